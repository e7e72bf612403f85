//! The reqwest sender: timeouts, no redirects, bounded response capture, SSRF check at connect time.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jobs::ports::{OutgoingRequest, SendResult, WebhookSender};
use tracing::Instrument;
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

/// The span of one HTTP request this service makes (OpenTelemetry's client-span conventions: named after the
/// method, `server.address`, `server.port`, then `http.response.status_code` or `error.type` recorded on it).
/// The URL itself is left out: a target's query may carry a token.
pub fn client_span(method: &'static str, url: &str) -> tracing::Span {
    let url = url::Url::parse(url).ok();
    let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
    tracing::info_span!(
        "http client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = host,
        server.port = url.as_ref().and_then(url::Url::port_or_known_default),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Record a request's answer (or why there was none) on its [`client_span`].
pub fn record_answer(span: &tracing::Span, answer: Result<u16, &reqwest::Error>) {
    match answer {
        Ok(status) => {
            span.record("http.response.status_code", status);
            if status >= 400 {
                span.record("error.type", status);
            }
        }
        Err(e) if e.is_timeout() => {
            span.record("error.type", "timeout");
        }
        Err(_) => {
            span.record("error.type", "connection");
        }
    }
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, request: OutgoingRequest) -> SendResult {
        let span = client_span("POST", &request.url);
        self.post(request).instrument(span).await
    }
}

impl HttpSender {
    /// IP literals bypass the resolver: they are checked here (names are checked by the resolver at connect time).
    fn refused_literal(&self, url: &str) -> Option<SendResult> {
        let url = TargetUrl::parse(url).ok()?;
        let Err(TargetError::NotAllowed(ip)) = url.check_literal(&self.policy) else {
            return None;
        };
        let reason = FailureReason::TargetRefused(format!("not a public address: {ip}"));
        Some(SendResult {
            outcome: AttemptOutcome::Failed {
                reason,
                status: None,
                elapsed_ms: 0,
                retry_after: None,
            },
            response_body: None,
        })
    }

    /// The POST, in its client span: it carries that span's `traceparent` (not signed: the signature covers the
    /// body, with the delivery id and timestamp).
    async fn post(&self, mut request: OutgoingRequest) -> SendResult {
        jobs::trace::inject(&mut request.headers);
        let started = Instant::now();
        let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
        if let Some(refused) = self.refused_literal(&request.url) {
            return refused;
        }
        let mut builder = self.client.post(&request.url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let sent = builder.send().await;
        record_answer(
            &tracing::Span::current(),
            sent.as_ref().map(|r| r.status().as_u16()),
        );
        match sent {
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
