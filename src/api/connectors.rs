//! `/connectors`: per-store channel configs (credentials are write-only), their sync log, jobs and dead letters,
//! "poll now" and "test connection". Operators only: the platform's admin back-end calls these for a store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::connector::handler::NoContext;
use jobs::connector::{
    ConnectorAdapter, ConnectorConfig, ConnectorContext, CredentialField, Credentials,
};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;
use workflows::EventPattern;
use workflows::connector::parse_job_status;

use super::auth::OperatorStoreAuth;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::{FilterText, Name, Settings};
use super::{AppState, Tag, next_page, page_limit};
use crate::connectors::store_credentials;
use crate::db::connectors::{self, ConfigRow, JobRow, LogFilter, NewConfig, Patch, SyncRunRow};

/// A connector type the service offers.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorType {
    /// `amazon`, `ebay`, `google_shopping`.
    pub connector_type: String,
    /// Events it handles (a new config's default subscriptions).
    pub supported_events: Vec<String>,
    /// Credential fields it needs (`apiKey`, `apiSecret`, `refreshToken`).
    pub required_credentials: Vec<String>,
    /// Whether it pulls changes on a schedule.
    pub polls: bool,
}

/// Credentials: written here, never returned.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CredentialsInput {
    /// Client id (Amazon LWA, eBay) or service-account email (Google).
    pub api_key: Option<String>,
    /// Client secret (Amazon LWA, eBay) or service-account private key PEM (Google).
    pub api_secret: Option<String>,
    /// Refresh token (Amazon, eBay).
    pub refresh_token: Option<String>,
}

/// A new connector config.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateConnector {
    /// A type from `GET /connector-types`.
    pub connector_type: String,
    /// Display name (1–200 characters, no control characters; stored trimmed).
    pub display_name: Name,
    /// Events to sync; default: every event the connector supports.
    pub event_subscriptions: Option<Vec<String>>,
    /// Non-sensitive settings (see docs/connectors.md): a JSON object; no NUL in any key or string.
    pub settings: Settings,
    /// Seconds between polls, for connectors that poll (default `connectors.default_poll_interval_secs`; 0: no polling).
    pub poll_interval_secs: Option<i32>,
    /// Credentials (may be set later with `PUT /connectors/{id}/credentials`).
    pub credentials: Option<CredentialsInput>,
    /// Default: true when complete credentials are given. Activation requires them.
    pub is_active: Option<bool>,
}

/// Changes; absent fields are kept.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateConnector {
    /// Display name (1–200 characters, no control characters; stored trimmed).
    pub display_name: Option<Name>,
    /// Events to sync.
    pub event_subscriptions: Option<Vec<String>>,
    /// Settings (replaced whole): a JSON object; no NUL in any key or string.
    pub settings: Option<Settings>,
    /// Seconds between polls (0: stop polling).
    pub poll_interval_secs: Option<i32>,
}

/// Which credentials are set (never their values).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CredentialsState {
    /// Fields set.
    pub set: Vec<String>,
    /// Every required field is set.
    pub complete: bool,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A connector config.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Connector {
    /// Id.
    pub config_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Type.
    pub connector_type: String,
    /// Name.
    pub display_name: String,
    /// Active.
    pub is_active: bool,
    /// Events it receives.
    pub event_subscriptions: Vec<String>,
    /// Settings.
    pub settings: serde_json::Value,
    /// Credentials state.
    pub credentials: CredentialsState,
    /// Seconds between polls (absent: no polling).
    pub poll_interval_secs: Option<i32>,
    /// Next poll.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Last poll.
    pub last_polled_at: Option<DateTime<Utc>>,
    /// Where the next poll starts.
    pub poll_cursor: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A page of configs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorPage {
    /// Items, oldest first.
    pub items: Vec<Connector>,
    /// Next page cursor.
    pub next_cursor: Option<String>,
}

/// One run in the sync log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SyncRun {
    /// Id.
    pub run_id: Uuid,
    /// INBOUND or OUTBOUND.
    pub direction: String,
    /// Entity.
    pub entity_type: String,
    /// Records written (outbound) or newly published (inbound).
    pub record_count: i32,
    /// SUCCEEDED, FAILED or SKIPPED.
    pub status: String,
    /// Error, or why it was skipped.
    pub error_summary: Option<String>,
    /// Outbound: the job.
    pub job_id: Option<Uuid>,
    /// Outbound: the event.
    pub event_type: Option<String>,
    /// Outbound: attempt number.
    pub attempt_number: Option<i32>,
    /// Inbound: poll number.
    pub poll_seq: Option<i32>,
    /// Requests sent to the channel.
    pub requests: i32,
    /// Worker.
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
}

/// A page of the sync log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SyncRunPage {
    /// Newest first.
    pub items: Vec<SyncRun>,
    /// Next page cursor.
    pub next_cursor: Option<String>,
}

/// An outbound connector job.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorJob {
    /// Id.
    pub job_id: Uuid,
    /// Config.
    pub config_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Event id.
    pub event_id: Uuid,
    /// PENDING, FAILED (retry scheduled), SUCCEEDED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// Next attempt.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Last error.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A page of jobs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorJobPage {
    /// Newest first.
    pub items: Vec<ConnectorJob>,
    /// Next page cursor.
    pub next_cursor: Option<String>,
}

/// A queued poll.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PollQueued {
    /// Its number (it appears in the sync log as `pollSeq`).
    pub poll_seq: i32,
}

/// Result of "test connection".
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectionTest {
    /// The channel accepted the credentials and settings.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
    /// The channel's HTTP status on failure.
    pub http_status: Option<u16>,
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Connector>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
enum Accepted {
    /// Queued.
    #[oai(status = 202)]
    Accepted(Json<PollQueued>),
}

fn field_name(f: CredentialField) -> &'static str {
    match f {
        CredentialField::ApiKey => "apiKey",
        CredentialField::ApiSecret => "apiSecret",
        CredentialField::RefreshToken => "refreshToken",
    }
}

/// Every credential field the connector needs is among those set.
fn credentials_complete(adapter: Option<&Arc<dyn ConnectorAdapter>>, set: &[String]) -> bool {
    adapter.is_some_and(|a| {
        a.required_credentials()
            .iter()
            .all(|f| set.iter().any(|s| s == field_name(*f)))
    })
}

/// A config as the API shows it (its adapter says which credentials make it complete).
fn to_connector(state: &AppState, r: ConfigRow) -> Connector {
    let complete = credentials_complete(
        state.connectors.registry.get(&r.connector_type),
        &r.credentials_set,
    );
    Connector {
        config_id: r.config_id,
        store_id: r.store_id,
        connector_type: r.connector_type,
        display_name: r.display_name,
        is_active: r.is_active,
        event_subscriptions: r.event_subscriptions,
        settings: r.settings,
        credentials: CredentialsState {
            set: r.credentials_set,
            complete,
            updated_at: r.credentials_updated_at,
        },
        poll_interval_secs: r.poll_interval_secs,
        next_poll_at: r.next_poll_at,
        last_polled_at: r.last_polled_at,
        poll_cursor: r.poll_cursor,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

impl From<SyncRunRow> for SyncRun {
    fn from(r: SyncRunRow) -> Self {
        Self {
            run_id: r.run_id,
            direction: r.direction,
            entity_type: r.entity_type,
            record_count: r.record_count,
            status: r.status,
            error_summary: r.error_summary,
            job_id: r.job_id,
            event_type: r.event_type,
            attempt_number: r.attempt_number,
            poll_seq: r.poll_seq,
            requests: r.requests,
            worker: r.worker,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<JobRow> for ConnectorJob {
    fn from(r: JobRow) -> Self {
        Self {
            job_id: r.job_id.into(),
            config_id: r.config_id.into(),
            event_type: r.event_type,
            event_id: r.event_id.into(),
            status: r.status,
            attempt_number: r.attempt_number,
            next_retry_at: r.next_retry_at,
            completed_at: r.completed_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(
        "connector_not_found",
        format!("connector {id} does not exist in this store"),
    )
}

fn adapter(state: &AppState, connector_type: &str) -> Result<Arc<dyn ConnectorAdapter>, ApiError> {
    state
        .connectors
        .registry
        .get(connector_type)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = state
                .connectors
                .registry
                .all()
                .map(|a| a.connector_type())
                .collect();
            ApiError::Invalid(
                "unknown_connector_type",
                format!("{connector_type:?} is not one of {}", known.join(", ")),
            )
        })
}

fn valid_events(
    adapter: &dyn ConnectorAdapter,
    events: &[String],
) -> Result<Vec<String>, ApiError> {
    let supported = adapter.supported_events();
    let mut out: Vec<String> = Vec::new();
    for raw in events {
        let pattern = EventPattern::parse(raw.trim())
            .map_err(|e| ApiError::Invalid("invalid_event_type", e.to_string()))?;
        if !supported.contains(&pattern.as_str()) {
            return Err(ApiError::Invalid(
                "unsupported_event",
                format!(
                    "{} handles {}, not {}",
                    adapter.connector_type(),
                    supported.join(", "),
                    pattern.as_str()
                ),
            ));
        }
        if !out.iter().any(|e| e == pattern.as_str()) {
            out.push(pattern.as_str().to_owned());
        }
    }
    Ok(out)
}

fn valid_settings(
    adapter: &dyn ConnectorAdapter,
    settings: &serde_json::Value,
) -> Result<(), ApiError> {
    if !settings.is_object() {
        return Err(ApiError::Invalid(
            "invalid_settings",
            "settings must be a JSON object".into(),
        ));
    }
    adapter
        .check_settings(settings)
        .map_err(|e| ApiError::Invalid("invalid_settings", e))
}

fn valid_interval(
    adapter: &dyn ConnectorAdapter,
    secs: Option<i32>,
    default: u32,
) -> Result<Option<i32>, ApiError> {
    match (adapter.polls(), secs) {
        (_, Some(0)) | (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::Invalid(
            "connector_does_not_poll",
            format!("{} does not poll", adapter.connector_type()),
        )),
        (true, Some(s)) if !(1..=86_400).contains(&s) => Err(ApiError::Invalid(
            "invalid_poll_interval",
            "pollIntervalSecs must be 1-86400".into(),
        )),
        (true, s) => Ok(Some(s.unwrap_or(default as i32))),
    }
}

fn to_credentials(
    adapter: &dyn ConnectorAdapter,
    input: &CredentialsInput,
) -> Result<Credentials, ApiError> {
    let mut c = Credentials::default();
    for (field, value) in [
        (CredentialField::ApiKey, &input.api_key),
        (CredentialField::ApiSecret, &input.api_secret),
        (CredentialField::RefreshToken, &input.refresh_token),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.trim().is_empty()) {
            c.0.insert(field, v.clone());
        }
    }
    let missing: Vec<&str> = adapter
        .required_credentials()
        .iter()
        .filter(|f| !c.0.contains_key(f))
        .map(|f| field_name(*f))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Invalid(
            "credentials_incomplete",
            format!("{} needs {}", adapter.connector_type(), missing.join(", ")),
        ));
    }
    Ok(c)
}

fn secret_store_error(e: crate::secrets::SecretStoreError) -> ApiError {
    ApiError::Unavailable("secret_store_unavailable", e.to_string())
}

/// Erase a deleted config's credentials, then clear its tombstone's `credentials_set`. Never inside the delete's
/// transaction: erased secrets cannot come back if that transaction then failed to commit.
async fn erase_credentials(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    if let Err(e) = store_credentials(state.secrets.as_ref(), id, &Credentials::default()).await {
        tracing::error!(config_id = %id, error = %e, "connector deleted, but its credentials could not be erased yet; a repeated DELETE retries");
        return Err(ApiError::Unavailable(
            "secret_store_unavailable",
            format!(
                "the connector is deleted, but erasing its credentials failed ({e}); repeat the DELETE to retry"
            ),
        ));
    }
    connectors::credentials_erased(&state.pool, id)
        .await
        .map_err(ApiError::from)
}

async fn load(state: &AppState, store_id: &str, id: Uuid) -> Result<ConfigRow, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
    connectors::get(&mut conn, store_id, id, false)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))
}

/// The connectors resource.
pub struct ConnectorsApi;

#[OpenApi(tag = "Tag::Connectors")]
impl ConnectorsApi {
    /// Connector types this service offers.
    #[oai(path = "/connector-types", method = "get")]
    async fn types(
        &self,
        _auth: OperatorStoreAuth,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<ConnectorType>>, Problems<{ STORE_CALLER }>> {
        Ok(Json(
            state
                .connectors
                .registry
                .all()
                .map(|a| ConnectorType {
                    connector_type: a.connector_type().to_owned(),
                    supported_events: a
                        .supported_events()
                        .iter()
                        .map(|e| (*e).to_owned())
                        .collect(),
                    required_credentials: a
                        .required_credentials()
                        .iter()
                        .map(|f| field_name(*f).to_owned())
                        .collect(),
                    polls: a.polls(),
                })
                .collect(),
        ))
    }

    /// Configure a connector for the store; credentials given here are stored and never shown again.
    #[oai(path = "/connectors", method = "post")]
    async fn create(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        body: Json<CreateConnector>,
    ) -> Result<Created, Problems<{ STORE_CALLER | JSON_BODY | CONFLICT }>> {
        let adapter = adapter(&state, &body.connector_type)?;
        let default_events: Vec<String> = adapter
            .supported_events()
            .iter()
            .map(|e| (*e).to_owned())
            .collect();
        let events = valid_events(
            adapter.as_ref(),
            body.event_subscriptions
                .as_deref()
                .unwrap_or(&default_events),
        )?;
        valid_settings(adapter.as_ref(), body.settings.as_value())?;
        let interval = valid_interval(
            adapter.as_ref(),
            body.poll_interval_secs,
            state.connectors_default_poll,
        )?;
        let credentials = body
            .credentials
            .as_ref()
            .map(|c| to_credentials(adapter.as_ref(), c))
            .transpose()?;
        let activate = body.is_active.unwrap_or(credentials.is_some());
        if activate && credentials.is_none() {
            return Err(ApiError::Conflict(
                "connector_credentials_missing",
                "set credentials before activating".into(),
            )
            .into());
        }
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let new = NewConfig {
            store_id: auth.0.store_id.as_str(),
            connector_type: adapter.connector_type(),
            display_name: &body.display_name,
            events: &events,
            settings: body.settings.as_value(),
            poll_interval_secs: interval,
        };
        let mut row = connectors::insert(&mut tx, &new)
            .await
            .map_err(ApiError::from)?;
        if let Some(c) = &credentials {
            // Stored before the row commits, so no worker ever sees an active config without its credentials.
            store_credentials(state.secrets.as_ref(), row.config_id, c)
                .await
                .map_err(secret_store_error)?;
            let set: Vec<String> = c.0.keys().map(|f| field_name(*f).to_owned()).collect();
            connectors::mark_credentials(&mut tx, row.config_id, &set)
                .await
                .map_err(ApiError::from)?;
        }
        if activate {
            let patch = Patch {
                is_active: Some(true),
                ..Patch::default()
            };
            row = connectors::update(&mut tx, new.store_id, row.config_id, &patch)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| not_found(row.config_id))?;
            connectors::schedule_poll(
                &mut tx,
                row.config_id,
                state.connectors.clock.now(),
                Duration::ZERO,
            )
            .await
            .map_err(ApiError::from)?;
        }
        let row = connectors::get(&mut tx, new.store_id, row.config_id, false)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(row.config_id))?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Created::Created(Json(to_connector(&state, row))))
    }

    /// The store's connectors.
    #[oai(path = "/connectors", method = "get")]
    async fn list(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        cursor: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<ConnectorPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let rows = connectors::list(&state.pool, auth.0.store_id.as_str(), cursor.0, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let rows: Vec<Connector> = rows.into_iter().map(|r| to_connector(&state, r)).collect();
        let (items, next_cursor) = next_page(rows, limit, |c: &Connector| c.config_id.to_string());
        Ok(Json(ConnectorPage { items, next_cursor }))
    }

    /// One connector (credentials: only which are set).
    #[oai(path = "/connectors/:id", method = "get")]
    async fn get(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = load(&state, auth.0.store_id.as_str(), id.0).await?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Change name, events, settings or poll interval.
    #[oai(path = "/connectors/:id", method = "patch")]
    async fn update(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateConnector>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let store = auth.0.store_id.as_str();
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = connectors::get(&mut tx, store, id.0, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        let adapter = adapter(&state, &current.connector_type)?;
        if let Some(s) = &body.settings {
            valid_settings(adapter.as_ref(), s.as_value())?;
        }
        let interval = body
            .poll_interval_secs
            .map(|s| valid_interval(adapter.as_ref(), Some(s), state.connectors_default_poll))
            .transpose()?;
        let patch = Patch {
            display_name: body.display_name.clone().map(Name::into_inner),
            events: body
                .event_subscriptions
                .as_deref()
                .map(|e| valid_events(adapter.as_ref(), e))
                .transpose()?,
            settings: body.settings.clone().map(Settings::into_inner),
            poll_interval_secs: interval,
            is_active: None,
        };
        connectors::update(&mut tx, store, id.0, &patch)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        if let Some(Some(secs)) = interval
            && current.is_active
        {
            // The new interval applies from now: the queued poll is superseded by one an interval away.
            connectors::schedule_poll(
                &mut tx,
                id.0,
                state.connectors.clock.now(),
                Duration::from_secs(secs as u64),
            )
            .await
            .map_err(ApiError::from)?;
        }
        let row = connectors::get(&mut tx, store, id.0, false)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Start syncing (needs complete credentials); a polling connector polls at once.
    #[oai(path = "/connectors/:id/activate", method = "post")]
    async fn activate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let store = auth.0.store_id.as_str();
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = connectors::get(&mut tx, store, id.0, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        let adapter = adapter(&state, &current.connector_type)?;
        if !credentials_complete(Some(&adapter), &current.credentials_set) {
            return Err(ApiError::Conflict(
                "connector_credentials_missing",
                "set credentials before activating".into(),
            )
            .into());
        }
        if !current.is_active {
            let patch = Patch {
                is_active: Some(true),
                ..Patch::default()
            };
            connectors::update(&mut tx, store, id.0, &patch)
                .await
                .map_err(ApiError::from)?;
            connectors::schedule_poll(&mut tx, id.0, state.connectors.clock.now(), Duration::ZERO)
                .await
                .map_err(ApiError::from)?;
        }
        let row = connectors::get(&mut tx, store, id.0, false)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Stop syncing: waiting jobs are cancelled, no more polls; events are no longer fanned out to it.
    #[oai(path = "/connectors/:id/deactivate", method = "post")]
    async fn deactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        let store = auth.0.store_id.as_str();
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let patch = Patch {
            is_active: Some(false),
            ..Patch::default()
        };
        let row = connectors::update(&mut tx, store, id.0, &patch)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Delete: the config stops at once (waiting jobs are cancelled); its credentials are erased from the secret
    /// store after that commits. If the erasure fails (`503 secret_store_unavailable`), the config stays deleted
    /// and a repeated `DELETE` retries the erasure. The sync log keeps its history.
    #[oai(path = "/connectors/:id", method = "delete")]
    async fn delete(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<NoContent, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let store_id = auth.0.store_id.as_str();
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        if connectors::delete(&mut tx, store_id, id.0)
            .await
            .map_err(ApiError::from)?
        {
            tx.commit().await.map_err(ApiError::from)?;
        } else {
            drop(tx);
            let pending = connectors::pending_erasure(&state.pool, store_id, id.0)
                .await
                .map_err(ApiError::from)?;
            if !pending {
                return Err(not_found(id.0).into());
            }
        }
        erase_credentials(&state, id.0).await?;
        Ok(NoContent::NoContent)
    }

    /// Set or replace the credentials (write-only: no endpoint returns them).
    #[oai(path = "/connectors/:id/credentials", method = "put")]
    async fn set_credentials(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<CredentialsInput>,
    ) -> Result<NoContent, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = connectors::get(&mut tx, auth.0.store_id.as_str(), id.0, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        let adapter = adapter(&state, &current.connector_type)?;
        let credentials = to_credentials(adapter.as_ref(), &body)?;
        store_credentials(state.secrets.as_ref(), id.0, &credentials)
            .await
            .map_err(secret_store_error)?;
        let set: Vec<String> = credentials
            .0
            .keys()
            .map(|f| field_name(*f).to_owned())
            .collect();
        connectors::mark_credentials(&mut tx, id.0, &set)
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(NoContent::NoContent)
    }

    /// The sync log: every outbound attempt and every poll, newest first.
    #[oai(path = "/connectors/:id/sync-log", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn sync_log(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        direction: Query<Option<String>>,
        status: Query<Option<String>>,
        #[oai(name = "entityType")] entity_type: Query<Option<FilterText>>,
        since: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<SyncRunPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        load(&state, auth.0.store_id.as_str(), id.0).await?;
        if let Some(d) = direction
            .0
            .as_deref()
            .filter(|d| !["INBOUND", "OUTBOUND"].contains(d))
        {
            return Err(ApiError::Invalid(
                "invalid_direction",
                format!("{d:?} is not INBOUND or OUTBOUND"),
            )
            .into());
        }
        if let Some(s) = status
            .0
            .as_deref()
            .filter(|s| !["SUCCEEDED", "FAILED", "SKIPPED"].contains(s))
        {
            return Err(ApiError::Invalid(
                "invalid_status",
                format!("{s:?} is not SUCCEEDED, FAILED or SKIPPED"),
            )
            .into());
        }
        let limit = page_limit(limit.0);
        let filter = LogFilter {
            direction: direction.0,
            status: status.0,
            entity_type: entity_type.0.map(FilterText::into_inner),
            since: since.0,
            before: cursor.0,
        };
        let rows = connectors::sync_log(
            &state.pool,
            auth.0.store_id.as_str(),
            id.0,
            &filter,
            limit + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let (items, next_cursor) = next_page(rows, limit, |r: &SyncRun| r.run_id.to_string());
        Ok(Json(SyncRunPage { items, next_cursor }))
    }

    /// Outbound jobs, newest first; `status=DEAD_LETTERED` lists the dead letters.
    #[oai(path = "/connectors/:id/jobs", method = "get")]
    async fn jobs(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        status: Query<Option<String>>,
        cursor: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<ConnectorJobPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        load(&state, auth.0.store_id.as_str(), id.0).await?;
        if let Some(s) = status
            .0
            .as_deref()
            .filter(|s| parse_job_status(s).is_none())
        {
            return Err(
                ApiError::Invalid("invalid_status", format!("{s:?} is not a job status")).into(),
            );
        }
        let limit = page_limit(limit.0);
        let rows = connectors::list_jobs(
            &state.pool,
            auth.0.store_id.as_str(),
            id.0,
            status.0.as_deref(),
            cursor.0,
            limit + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let (items, next_cursor) = next_page(rows, limit, |j: &ConnectorJob| j.job_id.to_string());
        Ok(Json(ConnectorJobPage { items, next_cursor }))
    }

    /// Re-trigger a dead-lettered or cancelled job: a new schedule of five attempts, the first now.
    #[oai(path = "/connectors/:id/jobs/:job_id/retrigger", method = "post")]
    async fn retrigger(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        job_id: Path<Uuid>,
    ) -> Result<Json<ConnectorJob>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let store = auth.0.store_id.as_str();
        let config = load(&state, store, id.0).await?;
        if let Some(job) = connectors::retrigger(&state.pool, store, id.0, job_id.0)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(Json(job.into()));
        }
        match connectors::get_job(&state.pool, store, id.0, job_id.0)
            .await
            .map_err(ApiError::from)?
        {
            None => Err(ApiError::NotFound(
                "connector_job_not_found",
                format!("job {} does not exist", job_id.0),
            )
            .into()),
            Some(_) if !config.is_active => Err(ApiError::Conflict(
                "connector_inactive",
                "activate the connector first".into(),
            )
            .into()),
            Some(j) => Err(ApiError::Conflict(
                "job_not_retriggerable",
                format!(
                    "job is {}; only DEAD_LETTERED or CANCELLED jobs are re-triggered",
                    j.status
                ),
            )
            .into()),
        }
    }

    /// Poll now (supersedes the scheduled poll; the schedule continues from this one).
    #[oai(path = "/connectors/:id/poll", method = "post")]
    async fn poll_now(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Accepted, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let config = load(&state, auth.0.store_id.as_str(), id.0).await?;
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let Some(poll_seq) =
            connectors::schedule_poll(&mut tx, id.0, state.connectors.clock.now(), Duration::ZERO)
                .await
                .map_err(ApiError::from)?
        else {
            let why = if config.poll_interval_secs.is_none() {
                "this connector does not poll"
            } else {
                "activate the connector first"
            };
            return Err(ApiError::Conflict("poll_not_possible", why.into()).into());
        };
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Accepted::Accepted(Json(PollQueued { poll_seq })))
    }

    /// Check credentials and settings with one authenticated call to the channel.
    #[oai(path = "/connectors/:id/test", method = "post")]
    async fn test(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<ConnectionTest>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        let row = load(&state, auth.0.store_id.as_str(), id.0).await?;
        let config = ConnectorConfig {
            config_id: row.config_id,
            store_id: row.store_id,
            connector_type: row.connector_type,
            settings: row.settings,
        };
        let (adapter, credentials, channel) = match state.connectors.prepare(&config).await {
            Ok(parts) => parts,
            Err(NoContext::SecretsUnavailable(why)) => {
                return Err(ApiError::Unavailable("secret_store_unavailable", why).into());
            }
            Err(NoContext::Broken(e)) => {
                return Ok(Json(ConnectionTest {
                    ok: false,
                    detail: e.to_string(),
                    http_status: None,
                }));
            }
        };
        let ctx = ConnectorContext {
            config: &config,
            credentials: &credentials,
            channel: &channel,
            now: Utc::now(),
        };
        Ok(Json(match adapter.test_connection(&ctx).await {
            Ok(detail) => ConnectionTest {
                ok: true,
                detail,
                http_status: None,
            },
            Err(e) => ConnectionTest {
                ok: false,
                http_status: e.as_failure().status,
                detail: e.to_string(),
            },
        }))
    }
}
