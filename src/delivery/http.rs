//! The reqwest sender: timeouts, no redirects, bounded response capture, SSRF check at connect time.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jobs::ports::{OutgoingRequest, SendResult, WebhookSender};
use workflows::delivery::is_success;
use workflows::{AttemptOutcome, FailureReason};

use super::target::{PublicOnlyResolver, TargetError, TargetPolicy, TargetUrl};

/// Sends webhooks with reqwest.
pub struct HttpSender {
    client: reqwest::Client,
    policy: TargetPolicy,
    body_limit: usize,
}

impl HttpSender {
    /// A sender with these timeouts and policy.
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        body_limit: usize,
        policy: TargetPolicy,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .dns_resolver(PublicOnlyResolver::new(policy.clone()))
            .build()?;
        Ok(Self {
            client,
            policy,
            body_limit,
        })
    }
}

/// The answer's `Retry-After`, when it is in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<chrono::Duration> {
    workflows::parse_retry_after(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Read at most `limit` bytes of the body; the rest is not downloaded. A read error ends the body early and is
/// returned beside what was read.
pub async fn capped_body(
    mut response: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            Ok(None) => break,
            Err(e) => return (body, Some(e)),
        }
    }
    (body, None)
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, request: OutgoingRequest) -> SendResult {
        let started = Instant::now();
        let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
        // IP literals bypass the resolver: check them here (names are checked by the resolver at connect time).
        if let Ok(url) = TargetUrl::parse(&request.url)
            && let Err(TargetError::NotAllowed(ip)) = url.check_literal(&self.policy)
        {
            let reason = FailureReason::TargetRefused(format!("not a public address: {ip}"));
            return SendResult {
                outcome: AttemptOutcome::Failed {
                    reason,
                    status: None,
                    elapsed_ms: 0,
                    retry_after: None,
                },
                response_body: None,
            };
        }
        let mut builder = self.client.post(&request.url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let wait = retry_after(response.headers());
                // A receiver that breaks off its answer still answered: keep what arrived.
                let (body, _) = capped_body(response, self.body_limit).await;
                let body = String::from_utf8_lossy(&body).into_owned();
                let elapsed_ms = elapsed(started);
                let outcome = if is_success(status) {
                    AttemptOutcome::Delivered { status, elapsed_ms }
                } else {
                    AttemptOutcome::Failed {
                        reason: FailureReason::HttpStatus(status),
                        status: Some(status),
                        elapsed_ms,
                        retry_after: wait,
                    }
                };
                SendResult {
                    outcome,
                    response_body: Some(body),
                }
            }
            Err(e) => {
                let reason = if e.is_timeout() {
                    FailureReason::Timeout
                } else {
                    FailureReason::Connection(error_chain(&e))
                };
                SendResult {
                    outcome: AttemptOutcome::Failed {
                        reason,
                        status: None,
                        elapsed_ms: elapsed(started),
                        retry_after: None,
                    },
                    response_body: None,
                }
            }
        }
    }
}

/// An error and its sources, joined (reqwest's own message omits the cause, e.g. the resolver's refusal).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
