//! HTTP to a sales channel: one port ([`ChannelHttp`], reqwest in the service), wrapped by [`Channel`], which
//! takes a token from the config's bucket before every call and honours `429 Retry-After` (a short wait is
//! waited out in place; a long one fails the attempt with the channel's delay, and pauses the config's bucket).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;
use workflows::connector::{StatusClass, SyncFailure, classify_status};
use workflows::ratelimit::{RateLimit, TokenBucket};

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

/// One token bucket per connector config, shared by every job of this process.
#[derive(Default)]
pub struct RateLimiters {
    buckets: Mutex<HashMap<Uuid, Arc<Mutex<TokenBucket>>>>,
}

impl RateLimiters {
    /// The bucket of a config (replaced when its limit changed).
    pub fn bucket(&self, config_id: Uuid, limit: RateLimit) -> Arc<Mutex<TokenBucket>> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(config_id)
            .or_insert_with(|| Arc::new(Mutex::new(TokenBucket::new(limit, Instant::now()))));
        let current = bucket.lock().unwrap_or_else(|p| p.into_inner()).limit();
        if current != limit {
            *bucket = Arc::new(Mutex::new(TokenBucket::new(limit, Instant::now())));
        }
        bucket.clone()
    }
}

/// Times a 429 is waited out in place before the attempt fails.
const INLINE_RETRIES: u32 = 2;

/// HTTP to one config's channel.
pub struct Channel {
    http: Arc<dyn ChannelHttp>,
    bucket: Arc<Mutex<TokenBucket>>,
    max_inline_wait: Duration,
    calls: AtomicU32,
}

impl Channel {
    /// A channel whose calls take tokens from `bucket`; a `Retry-After` up to `max_inline_wait` is waited out.
    pub fn new(
        http: Arc<dyn ChannelHttp>,
        bucket: Arc<Mutex<TokenBucket>>,
        max_inline_wait: Duration,
    ) -> Self {
        Self {
            http,
            bucket,
            max_inline_wait,
            calls: AtomicU32::new(0),
        }
    }

    /// Requests sent so far (for the sync log).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Wait for the config's next token; a wait longer than `max_inline_wait` (the channel paused us with a long
    /// `Retry-After`, or a backlog exceeds the limit) is returned as `RateLimited` instead of holding a worker slot.
    async fn take_token(&self) -> Result<(), ConnectorError> {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                match bucket.try_take(Instant::now()) {
                    Ok(()) => return Ok(()),
                    Err(wait) => wait,
                }
            };
            if wait > self.max_inline_wait {
                return Err(ConnectorError::RateLimited(wait));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Send `request` under the rate limit; any HTTP answer is returned, a transport failure is a retryable error.
    pub async fn send(&self, request: &ChannelRequest) -> Result<ChannelResponse, ConnectorError> {
        let mut waited = 0;
        loop {
            self.take_token().await?;
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
                self.bucket
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pause_until(Instant::now() + wait);
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
