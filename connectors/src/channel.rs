//! HTTP to a channel (a marketplace's remote API): one port ([`ChannelHttp`], reqwest in the service), wrapped by
//! [`ChannelClient`], which takes the config's next turn from the shared [`RateGate`] before every call (and the
//! turn of the request's [`Operation`], whose usage plan the channel meters separately) and honours a 429: its
//! `Retry-After`, or for a bare 429 (SP-API sends none) the time the operation's plan takes to allow one more call.
//! Every process pauses; a short wait is waited out in place, a long one fails the attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use uuid::Uuid;
use workflows::connector::{StatusClass, SyncFailure, classify_status};
use workflows::ids::ConnectorId;
use workflows::ratelimit::{RateLimit, Reservation};

use crate::model::ConnectorError;

/// The HTTP methods the adapters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads (orders, offers, connection tests).
    Get,
    /// Token exchanges, bulk updates, inserts.
    Post,
    /// Create-or-replace (Amazon listings).
    Put,
    /// Partial updates (Amazon quantities).
    Patch,
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// An operation a channel meters with its own usage plan (e.g. SP-API `searchOrders`: 0.0056/s, burst 20).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operation {
    /// The operation's name: its rate-limit bucket in the config's shared state.
    pub name: &'static str,
    /// Its usage plan.
    pub limit: RateLimit,
}

impl Operation {
    /// How long to wait after a 429 that names no `Retry-After`: the time the plan takes to allow one call (at
    /// least a second).
    pub fn backoff(&self) -> Duration {
        let secs = if self.limit.per_second > 0.0 {
            1.0 / self.limit.per_second
        } else {
            60.0
        };
        Duration::from_secs_f64(secs.clamp(1.0, 3600.0))
    }
}

/// One call to a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL, query included.
    pub url: String,
    /// Extra headers (auth, content language…).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Body,
    /// The operation, when the channel meters it apart from the config's limit.
    pub operation: Option<Operation>,
}

impl ChannelRequest {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
            operation: None,
        }
    }

    /// Meter the request as `operation` too.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
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
    /// The answer's `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    /// The answer's body (capped by the implementation).
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

/// The shared rate limits of lanes (Postgres in the service): one state per lane and bucket for every process. A
/// lane is a connector config (the bucket [`CONFIG_BUCKET`] is its own limit; others are operations' usage plans)
/// or a webhook subscription (its deliveries' limit).
#[async_trait]
pub trait RateGate: Send + Sync {
    /// Reserve the next call slot of the lane's `bucket` unless it is more than `max_wait` away.
    async fn reserve(
        &self,
        lane: Uuid,
        bucket: &str,
        limit: RateLimit,
        max_wait: Duration,
    ) -> Result<Reservation, String>;
    /// No call in the lane's `bucket` before `pause` from now (the channel's `Retry-After`, or a bare 429's
    /// backoff).
    async fn pause(
        &self,
        lane: Uuid,
        bucket: &str,
        limit: RateLimit,
        pause: Duration,
    ) -> Result<(), String>;
}

/// The bucket of a config's own rate limit.
pub const CONFIG_BUCKET: &str = "";

/// Times a 429 is waited out in place before the attempt fails.
const INLINE_RETRIES: u32 = 2;

/// HTTP to one config's channel, under the config's shared rate limit.
pub struct ChannelClient {
    http: Arc<dyn ChannelHttp>,
    gate: Arc<dyn RateGate>,
    config_id: ConnectorId,
    limit: RateLimit,
    max_inline_wait: Duration,
    operation_plans: bool,
    calls: AtomicU32,
}

impl ChannelClient {
    /// A client whose calls take turns through `gate` at `limit`; waits up to `max_inline_wait` are waited out.
    pub fn new(
        http: Arc<dyn ChannelHttp>,
        gate: Arc<dyn RateGate>,
        config_id: ConnectorId,
        limit: RateLimit,
        max_inline_wait: Duration,
    ) -> Self {
        Self {
            http,
            gate,
            config_id,
            limit,
            max_inline_wait,
            operation_plans: true,
            calls: AtomicU32::new(0),
        }
    }

    /// Whether requests also take turns from their operation's usage plan (the default). Off for a config whose
    /// operator set its own `rateLimit` (e.g. because the marketplace granted the seller more): that limit alone
    /// paces it, and a bare 429 pauses the whole config.
    pub fn with_operation_plans(mut self, on: bool) -> Self {
        self.operation_plans = on;
        self
    }

    /// The bucket and limit a request is metered by besides the config's: its operation's, when plans apply.
    fn operation_bucket(&self, request: &ChannelRequest) -> Option<Operation> {
        request.operation.filter(|_| self.operation_plans)
    }

    /// Requests sent so far (for the sync log).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Wait for the config's next turn, then the operation's; a turn further than `max_inline_wait` away (the
    /// channel paused us, or a backlog exceeds the limit) is returned as `RateLimited` instead of holding a slot.
    async fn take_turn(&self, operation: Option<&Operation>) -> Result<(), ConnectorError> {
        self.take_turn_in(CONFIG_BUCKET, self.limit).await?;
        match operation {
            Some(op) => self.take_turn_in(op.name, op.limit).await,
            None => Ok(()),
        }
    }

    async fn take_turn_in(&self, bucket: &str, limit: RateLimit) -> Result<(), ConnectorError> {
        match self
            .gate
            .reserve(self.config_id.uuid(), bucket, limit, self.max_inline_wait)
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
            self.take_turn(self.operation_bucket(request).as_ref())
                .await?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut response = self.http.send(request).await.map_err(|e| {
                ConnectorError::Channel(SyncFailure {
                    reason: format!("{}: {e}", describe(request)),
                    status: None,
                    retry_after: None,
                    permanent: false,
                })
            })?;
            if response.status == 429 {
                // A bare 429 of a metered operation waits for the plan's next call; the attempt's failure says so.
                if response.retry_after.is_none() {
                    response.retry_after = request.operation.map(|op| op.backoff());
                }
                let Some(wait) = response.retry_after else {
                    return Ok(response);
                };
                // Every process stops calling this config (or this operation) until then.
                let (bucket, limit) = self
                    .operation_bucket(request)
                    .map_or((CONFIG_BUCKET, self.limit), |op| (op.name, op.limit));
                if let Err(e) = self
                    .gate
                    .pause(self.config_id.uuid(), bucket, limit, wait)
                    .await
                {
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

/// Percent-encode one URL path segment or query value (everything but RFC 3986 unreserved characters).
pub fn encode(raw: &str) -> String {
    utf8_percent_encode(raw, UNRESERVED).to_string()
}

/// What [`encode`] escapes: everything but ASCII letters, digits and `-._~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request to `base` + `path` (query included), with a JSON body when given.
pub fn api_request(method: Method, base: &str, path: &str, body: Option<Value>) -> ChannelRequest {
    let request = ChannelRequest::new(method, format!("{}{path}", base.trim_end_matches('/')));
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers each request with the next status; records nothing else.
    struct Statuses(Mutex<Vec<u16>>);

    #[async_trait]
    impl ChannelHttp for Statuses {
        async fn send(&self, _: &ChannelRequest) -> Result<ChannelResponse, String> {
            let status = self.0.lock().map_err(|e| e.to_string())?.remove(0);
            Ok(ChannelResponse {
                status,
                retry_after: None,
                body: Vec::new(),
            })
        }
    }

    /// Grants every turn; records `(bucket, pause)` of every pause.
    #[derive(Default)]
    struct Pauses(Mutex<Vec<(String, Duration)>>);

    #[async_trait]
    impl RateGate for Pauses {
        async fn reserve(
            &self,
            _: uuid::Uuid,
            _: &str,
            _: RateLimit,
            _: Duration,
        ) -> Result<Reservation, String> {
            Ok(Reservation::Granted {
                wait: chrono::Duration::zero(),
                tat: chrono::Utc::now(),
            })
        }
        async fn pause(
            &self,
            _: uuid::Uuid,
            bucket: &str,
            _: RateLimit,
            pause: Duration,
        ) -> Result<(), String> {
            let mut p = self.0.lock().map_err(|e| e.to_string())?;
            p.push((bucket.to_owned(), pause));
            Ok(())
        }
    }

    const ORDERS: Operation = Operation {
        name: "searchOrders",
        limit: RateLimit {
            per_second: 0.0056,
            burst: 20,
        },
    };

    fn client(statuses: Vec<u16>, gate: Arc<Pauses>) -> ChannelClient {
        let limit = RateLimit {
            per_second: 5.0,
            burst: 10,
        };
        let http = Arc::new(Statuses(Mutex::new(statuses)));
        ChannelClient::new(
            http,
            gate,
            ConnectorId::new(),
            limit,
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn a_bare_429_pauses_the_operation_for_its_plan_and_the_failure_says_how_long() {
        let gate = Arc::new(Pauses::default());
        let c = client(vec![429], gate.clone());
        let request = ChannelRequest::new(Method::Get, "http://x/orders").operation(ORDERS);
        let Err(ConnectorError::Channel(f)) = c.call(&request).await else {
            panic!("a 429 fails the attempt");
        };
        let backoff = Duration::from_secs_f64(1.0 / 0.0056);
        assert_eq!(f.retry_after.and_then(|d| d.to_std().ok()), Some(backoff));
        assert!(!f.permanent);
        let paused = gate.0.lock().map(|p| p.clone()).unwrap_or_default();
        assert_eq!(paused, vec![("searchOrders".to_owned(), backoff)]);
    }

    #[tokio::test]
    async fn a_short_backoff_is_waited_out_in_place() {
        let gate = Arc::new(Pauses::default());
        let c = client(vec![429, 200], gate.clone());
        let fast = Operation {
            name: "putListingsItem",
            limit: RateLimit {
                per_second: 5.0,
                burst: 10,
            },
        };
        let request = ChannelRequest::new(Method::Put, "http://x/l").operation(fast);
        assert!(c.call(&request).await.is_ok());
        assert_eq!(c.calls(), 2);
        let paused = gate.0.lock().map(|p| p.clone()).unwrap_or_default();
        assert_eq!(
            paused,
            vec![("putListingsItem".to_owned(), Duration::from_secs(1))]
        );
    }

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode("TS-42_a.b~"), "TS-42_a.b~");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(
            encode("2026-11-20T10:00:00+00:00"),
            "2026-11-20T10%3A00%3A00%2B00%3A00"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}
