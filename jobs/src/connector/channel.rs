//! HTTP to a sales channel: one port ([`ChannelHttp`], reqwest in the service), wrapped by [`Channel`], which
//! takes the config's next turn from the shared [`RateGate`] before every call and honours `429 Retry-After`
//! (every process pauses the config; a short wait is waited out in place, a long one fails the attempt).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;
use workflows::connector::{StatusClass, SyncFailure, classify_status};
use workflows::ratelimit::{RateLimit, Reservation};

use super::ConnectorError;

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// None.
    Empty,
    /// `application/json`.
    Json(Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// One call to a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL, query included.
    pub url: String,
    /// Extra headers (auth, content language…).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body,
}

impl ChannelRequest {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// A form body.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.body = Body::Form(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }
}

/// A channel's answer.
#[derive(Debug, Clone)]
pub struct ChannelResponse {
    /// HTTP status.
    pub status: u16,
    /// Parsed `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Body (capped by the implementation).
    pub body: Vec<u8>,
}

impl ChannelResponse {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends requests; `Err` is a transport failure (no answer: timeout, connection refused).
#[async_trait]
pub trait ChannelHttp: Send + Sync {
    /// Send one request.
    async fn send(&self, request: &ChannelRequest) -> Result<ChannelResponse, String>;
}

/// The shared rate limit of connector configs (Postgres in the service): one state per config for every process.
#[async_trait]
pub trait RateGate: Send + Sync {
    /// Reserve the config's next call slot unless it is more than `max_wait` away.
    async fn reserve(
        &self,
        config_id: Uuid,
        limit: RateLimit,
        max_wait: Duration,
    ) -> Result<Reservation, String>;
    /// No call of the config before `pause` from now (the channel's `Retry-After`).
    async fn pause(&self, config_id: Uuid, limit: RateLimit, pause: Duration)
    -> Result<(), String>;
}

/// Times a 429 is waited out in place before the attempt fails.
const INLINE_RETRIES: u32 = 2;

/// HTTP to one config's channel.
pub struct Channel {
    http: Arc<dyn ChannelHttp>,
    gate: Arc<dyn RateGate>,
    config_id: Uuid,
    limit: RateLimit,
    max_inline_wait: Duration,
    calls: AtomicU32,
}

impl Channel {
    /// A channel whose calls take turns through `gate` at `limit`; waits up to `max_inline_wait` are waited out.
    pub fn new(
        http: Arc<dyn ChannelHttp>,
        gate: Arc<dyn RateGate>,
        config_id: Uuid,
        limit: RateLimit,
        max_inline_wait: Duration,
    ) -> Self {
        Self {
            http,
            gate,
            config_id,
            limit,
            max_inline_wait,
            calls: AtomicU32::new(0),
        }
    }

    /// Requests sent so far (for the sync log).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Wait for the config's next turn; a turn further than `max_inline_wait` away (the channel paused us with a
    /// long `Retry-After`, or a backlog exceeds the limit) is returned as `RateLimited` instead of holding a slot.
    async fn take_turn(&self) -> Result<(), ConnectorError> {
        match self
            .gate
            .reserve(self.config_id, self.limit, self.max_inline_wait)
            .await
        {
            Ok(Reservation::Granted { wait, .. }) => {
                if let Ok(wait) = wait.to_std()
                    && !wait.is_zero()
                {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Ok(Reservation::Denied { wait }) => Err(ConnectorError::RateLimited(
                wait.to_std().unwrap_or_default(),
            )),
            Err(e) => Err(ConnectorError::Channel(SyncFailure {
                reason: format!("rate limiter unavailable: {e}"),
                status: None,
                retry_after: None,
                permanent: false,
            })),
        }
    }

    /// Send `request` under the rate limit; any HTTP answer is returned, a transport failure is a retryable error.
    pub async fn send(&self, request: &ChannelRequest) -> Result<ChannelResponse, ConnectorError> {
        let mut waited = 0;
        loop {
            self.take_turn().await?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let response = self.http.send(request).await.map_err(|e| {
                ConnectorError::Channel(SyncFailure {
                    reason: format!("{}: {e}", describe(request)),
                    status: None,
                    retry_after: None,
                    permanent: false,
                })
            })?;
            if response.status == 429
                && let Some(wait) = response.retry_after
            {
                // Every process stops calling this config until then.
                if let Err(e) = self.gate.pause(self.config_id, self.limit, wait).await {
                    tracing::warn!(error = %e, "could not record the channel's Retry-After");
                }
                if wait <= self.max_inline_wait && waited < INLINE_RETRIES {
                    waited += 1;
                    tracing::debug!(?wait, "channel asked to slow down; waiting in place");
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// Send `request` and require a 2xx; the answer's JSON (`Null` when empty) or the classified failure.
    pub async fn call(&self, request: &ChannelRequest) -> Result<Value, ConnectorError> {
        let response = self.send(request).await?;
        match classify_status(response.status) {
            StatusClass::Success => Ok(response.json()),
            _ => Err(failure(request, &response)),
        }
    }
}

fn describe(request: &ChannelRequest) -> String {
    let path = request.url.split('?').next().unwrap_or(&request.url);
    format!("{:?} {path}", request.method).to_uppercase()
}

/// The failure for a non-2xx answer: retryable or permanent by status, with the channel's message and delay.
pub fn failure(request: &ChannelRequest, response: &ChannelResponse) -> ConnectorError {
    let text = String::from_utf8_lossy(&response.body);
    let snippet: String = text.chars().take(300).collect();
    ConnectorError::Channel(SyncFailure {
        reason: format!(
            "{} answered HTTP {}: {snippet}",
            describe(request),
            response.status
        ),
        status: Some(response.status),
        retry_after: response
            .retry_after
            .and_then(|d| chrono::Duration::from_std(d).ok()),
        permanent: classify_status(response.status) == StatusClass::Permanent,
    })
}

/// True when the failure is the channel refusing our access token.
pub fn is_unauthorized(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Channel(f) if f.status == Some(401))
}
