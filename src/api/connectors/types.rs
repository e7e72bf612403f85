//! The DTOs of a connector configuration: what is created, changed and shown.

use ::connectors::ConnectorAdapter;
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use workflows::ids::ConnectorId;

use super::validate::{credentials_complete, field_name};
use crate::api::AppState;
use crate::api::types::{Name, Settings};
use crate::db::connectors::ConfigRow;

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

impl ConnectorType {
    /// What `GET /connector-types` says about `adapter`.
    pub fn of(adapter: &std::sync::Arc<dyn ConnectorAdapter>) -> Self {
        Self {
            connector_type: adapter.connector_type().to_owned(),
            supported_events: adapter
                .supported_events()
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            required_credentials: adapter
                .required_credentials()
                .iter()
                .map(|f| field_name(*f).to_owned())
                .collect(),
            polls: adapter.polls(),
        }
    }
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
    /// The fields set (`apiKey`, `apiSecret`, `refreshToken`).
    pub set: Vec<String>,
    /// Every required field is set.
    pub complete: bool,
    /// When they last changed (absent: never set).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A connector config.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Connector {
    /// The connector's id (`{id}` of its routes), assigned at creation.
    pub config_id: ConnectorId,
    /// The store it belongs to.
    pub store_id: String,
    /// Its type, one of `GET /connector-types`; fixed at creation.
    pub connector_type: String,
    /// The display name, as stored (trimmed).
    pub display_name: String,
    /// Whether it syncs: receives events, runs jobs and polls. Needs complete credentials.
    pub is_active: bool,
    /// Events it receives.
    pub event_subscriptions: Vec<String>,
    /// Non-sensitive settings, as last set (see docs/connectors.md).
    pub settings: serde_json::Value,
    /// Which credential fields are set (never their values).
    pub credentials: CredentialsState,
    /// Seconds between polls (absent: no polling).
    pub poll_interval_secs: Option<i32>,
    /// When the next poll is due (absent: none scheduled).
    pub next_poll_at: Option<DateTime<Utc>>,
    /// When the last poll ran (absent: never).
    pub last_polled_at: Option<DateTime<Utc>>,
    /// Where the next poll starts.
    pub poll_cursor: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its configuration last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of configs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorPage {
    /// Items, oldest first.
    pub items: Vec<Connector>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The result of "test connection".
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

pub(super) fn to_connector(state: &AppState, r: ConfigRow) -> Connector {
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
