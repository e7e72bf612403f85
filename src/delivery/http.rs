//! The reqwest sender: timeouts, no redirects, bounded response capture, SSRF check at connect time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jobs::ports::{OutgoingRequest, SendResult, WebhookSender};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use workflows::delivery::is_success;
use workflows::{AttemptOutcome, FailureReason};

use super::target::{TargetError, TargetPolicy, TargetUrl, is_public};

/// Sends webhooks with reqwest.
pub struct HttpSender {
    client: reqwest::Client,
    policy: TargetPolicy,
    body_limit: usize,
}

/// Resolves names and, in production mode, drops non-public addresses, so DNS rebinding cannot reach them.
struct PublicOnlyResolver {
    policy: TargetPolicy,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed_anyway = !policy.refuse_private
                || policy
                    .allowed_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&host));
            let kept: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allowed_anyway || is_public(&a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!("{host} resolves only to non-public addresses").into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
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
            .dns_resolver(Arc::new(PublicOnlyResolver {
                policy: policy.clone(),
            }))
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
            let reason = FailureReason::TargetRefused(format!("{ip} is not a public address"));
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
