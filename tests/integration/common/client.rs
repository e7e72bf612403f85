//! A typed client of the API for tests: requests as an operator (or with any bearer token), answers as serde
//! structs with the fields tests read, so a renamed or retyped field fails in one place instead of as a `Null`
//! compared deep inside a test. Each `create_*` asserts 201 and shows the body when it is not.
//!
//! The structs mirror the API's documented shapes (docs/openapi.json) loosely: fields tests do not read are left
//! out, and a test that needs the raw document still has `TestApp::as_store`.

use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// `Subscription`: a webhook endpoint of one store.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub store_id: String,
    pub name: String,
    pub target_url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    pub max_in_flight: Option<u32>,
    pub delivery_lane: DeliveryLane,
}

/// `DeliveryLane`: a subscription's limit of attempts in flight and its slow-receiver breaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryLane {
    pub state: String,
    pub in_flight_limit: u32,
    pub consecutive_slow: u32,
}

/// `CreatedSubscription`: the subscription and its signing secret, shown only in this answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSubscription {
    pub subscription: Subscription,
    pub signing_secret: String,
}

/// `Delivery`: one event to one subscription, with every attempt.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: Uuid,
    pub subscription_id: Uuid,
    pub store_id: String,
    pub event_type: String,
    pub event_id: String,
    pub status: String,
    pub attempt_number: i32,
    pub payload: Value,
    pub last_error: Option<String>,
    pub next_retry_at: Option<chrono::DateTime<chrono::Utc>>,
    pub attempts: Vec<Attempt>,
}

/// `Attempt`: one send of a delivery and what came back.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt_number: i32,
    pub status: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// `IngestResult`: what `POST /events` created for one event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestResult {
    pub event_id: String,
    pub accepted: bool,
    pub delivery_ids: Vec<Uuid>,
    pub connector_job_ids: Vec<Uuid>,
}

/// `Credential`: an API key or OAuth client as listed (never its secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub credential_id: Uuid,
    pub store_id: String,
    pub name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub is_active: bool,
}

/// `IssuedCredential`: a new credential with its secret, shown only in this answer: `api_key` for an API key,
/// `client_id` and `client_secret` for an OAuth client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredential {
    pub credential: Credential,
    pub api_key: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl IssuedCredential {
    /// The API key of a credential issued as `API_KEY`.
    pub fn key(&self) -> &str {
        self.api_key.as_deref().expect("an API key was issued")
    }
}

/// `Validation`: the gateway's answer for a presented token.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    pub store_id: Option<String>,
    pub credential_id: Option<Uuid>,
    pub scopes: Option<Vec<String>>,
}

/// `Connector`: a configured marketplace integration of one store (credentials shown only as their state).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub config_id: Uuid,
    pub store_id: String,
    pub connector_type: String,
    pub is_active: bool,
    pub event_subscriptions: Vec<String>,
    pub settings: Value,
    pub poll_cursor: Option<String>,
    pub poll_interval_secs: Option<i64>,
    pub next_poll_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `ConnectorJob`: one event's outbound work for one connector, across its attempts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorJob {
    pub job_id: Uuid,
    pub config_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempt_number: i32,
    pub last_error: Option<String>,
    pub next_retry_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `SyncRun`: one call sequence of a connector in its sync log (an outbound job's attempt or one inbound poll).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub direction: String,
    pub entity_type: String,
    pub record_count: i64,
    pub status: String,
    pub requests: i64,
    pub worker: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub error_summary: Option<String>,
    pub poll_seq: Option<i64>,
    pub job_id: Option<Uuid>,
}

/// A page of a list: its items and the cursor of the next page, if any.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: DeserializeOwned> Page<T> {
    /// A page read from a document the test also inspects whole.
    pub fn of(doc: &Value) -> Self {
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("a page: {e}: {doc}"))
    }
}

/// The API at `base`, as the holder of `token` (the operator token unless the test says otherwise).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of the API at `base` (`http://host:port`) presenting `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
            token: token.into(),
        }
    }

    /// A request acting on `store`.
    pub fn request(&self, method: Method, path: &str, store: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("x-ss3-store-id", store)
    }

    /// `POST /subscriptions` for `events` to `target`.
    pub async fn create_subscription(
        &self,
        store: &str,
        target: &str,
        events: &[&str],
    ) -> CreatedSubscription {
        let body = json!({"name": "test", "targetUrl": target, "events": events});
        let response = self
            .request(Method::POST, "/subscriptions", store)
            .json(&body)
            .send()
            .await;
        created(response, "create subscription").await
    }

    /// `PATCH /subscriptions/{id}` with `changes`; asserts 200.
    pub async fn update_subscription(
        &self,
        store: &str,
        id: Uuid,
        changes: &Value,
    ) -> Subscription {
        let response = self
            .request(Method::PATCH, &format!("/subscriptions/{id}"), store)
            .json(changes)
            .send()
            .await
            .expect("request sent");
        expect_json(response, 200).await
    }

    /// `POST /events` (no store header: the envelope names the store): 202 for a new event, 200 for a duplicate.
    pub async fn ingest(&self, event: &Value) -> IngestResult {
        let response = self
            .http
            .post(format!("{}/events", self.base))
            .bearer_auth(&self.token)
            .json(event)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(matches!(status, 200 | 202), "POST /events: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST /events: {e}: {body}"))
    }

    /// `GET /deliveries/{id}`.
    pub async fn delivery(&self, store: &str, id: &str) -> Delivery {
        self.get(store, &format!("/deliveries/{id}")).await
    }

    /// `POST /credentials` of `kind` (`API_KEY` or `OAUTH_CLIENT`).
    pub async fn create_credential(
        &self,
        store: &str,
        kind: &str,
        name: &str,
        scopes: &[&str],
    ) -> IssuedCredential {
        let body = json!({"name": name, "type": kind, "scopes": scopes});
        let response = self
            .request(Method::POST, "/credentials", store)
            .json(&body)
            .send()
            .await;
        created(response, "create credential").await
    }

    /// `POST /credentials` of an API key.
    pub async fn create_key(&self, store: &str, name: &str, scopes: &[&str]) -> IssuedCredential {
        self.create_credential(store, "API_KEY", name, scopes).await
    }

    /// `GET /credentials/validate` presenting `token` (not this client's token).
    pub async fn validate(&self, token: &str) -> Validation {
        let response = self
            .http
            .get(format!("{}/credentials/validate", self.base))
            .bearer_auth(token)
            .send()
            .await;
        answer(response, 200, "validate").await
    }

    /// `POST /connectors`.
    pub async fn create_connector(&self, store: &str, body: &Value) -> Connector {
        let response = self
            .request(Method::POST, "/connectors", store)
            .json(body)
            .send()
            .await;
        created(response, "create connector").await
    }

    /// `GET /connectors/{id}`.
    pub async fn connector(&self, store: &str, id: &str) -> Connector {
        self.get(store, &format!("/connectors/{id}")).await
    }

    /// `GET /connectors/{id}/jobs?{query}`.
    pub async fn connector_jobs(&self, store: &str, id: &str, query: &str) -> Vec<ConnectorJob> {
        let page: Page<ConnectorJob> = self
            .get(store, &format!("/connectors/{id}/jobs?{query}"))
            .await;
        page.items
    }

    /// `GET /connectors/{id}/sync-log?{query}`: the first page of the connector's sync log.
    pub async fn sync_log(&self, store: &str, id: &str, query: &str) -> Vec<SyncRun> {
        let page: Page<SyncRun> = self
            .get(store, &format!("/connectors/{id}/sync-log?{query}"))
            .await;
        page.items
    }

    /// `GET {path}` acting on `store`, expecting 200 and a `T`.
    pub async fn get<T: DeserializeOwned>(&self, store: &str, path: &str) -> T {
        let response = self.request(Method::GET, path, store).send().await;
        answer(response, 200, path).await
    }
}

/// Send a request and read its answer as JSON whatever the status, for tests that assert on the raw document.
pub trait JsonAnswer {
    /// The answer's body as `T`; panics when the request is not sent or the body is not JSON.
    fn json_answer<T: DeserializeOwned>(self) -> impl Future<Output = T>;
}

impl JsonAnswer for RequestBuilder {
    async fn json_answer<T: DeserializeOwned>(self) -> T {
        self.send().await.expect("req").json().await.expect("json")
    }
}

/// An answer the test already holds, which must have status `want`, as `T`.
pub async fn expect_json<T: DeserializeOwned>(response: Response, want: u16) -> T {
    let what = format!("{} {}", response.url().path(), want);
    answer(Ok(response), want, &what).await
}

/// A 201 answer as `T`.
async fn created<T: DeserializeOwned>(response: reqwest::Result<Response>, what: &str) -> T {
    answer(response, 201, what).await
}

/// An answer with status `want` as `T`; otherwise the test fails showing the status and body.
async fn answer<T: DeserializeOwned>(
    response: reqwest::Result<Response>,
    want: u16,
    what: &str,
) -> T {
    let response = response.expect("request sent");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, want, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
}
