//! The connector framework: the [`ConnectorAdapter`] trait every channel implements, the [`Registry`] that maps a
//! `connector_type` to its adapter, and the types they exchange. Adding a connector is one module in
//! `crate::connectors` and one line in [`Registry::standard`].

pub mod channel;
pub mod handler;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use workflows::catalog::PayloadError;
use workflows::connector::SyncFailure;
use workflows::ratelimit::RateLimit;

pub use channel::{Body, Channel, ChannelHttp, ChannelRequest, ChannelResponse, Method, RateGate};

/// A store's configuration of one connector (its non-secret part).
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Id; also the key of its credentials in the secret store.
    pub config_id: Uuid,
    /// Store.
    pub store_id: String,
    /// `amazon`, `ebay`, `google_shopping`.
    pub connector_type: String,
    /// Non-sensitive settings (seller and marketplace ids, region, rate limit; never URLs).
    pub settings: Value,
}

/// The credential fields a connector can need, each stored at `connector/{config_id}/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialField {
    /// Client id / service account email.
    ApiKey,
    /// Client secret / service account private key.
    ApiSecret,
    /// A long-lived refresh token.
    RefreshToken,
}

impl CredentialField {
    /// Every field, in path order.
    pub const ALL: [CredentialField; 3] = [Self::ApiKey, Self::ApiSecret, Self::RefreshToken];

    /// Last segment of its secret-store path.
    pub fn path(self) -> &'static str {
        match self {
            Self::ApiKey => "api-key",
            Self::ApiSecret => "api-secret",
            Self::RefreshToken => "refresh-token",
        }
    }
}

/// A config's credentials as read from the secret store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<CredentialField, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// A field, or a permanent error naming it.
    pub fn require(&self, field: CredentialField) -> Result<&str, ConnectorError> {
        self.0
            .get(&field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConnectorError::Credentials(format!("credential {} is not set", field.path()))
            })
    }

    /// A short hash naming these exact credentials (cached access tokens are keyed by it, so replaced credentials
    /// never reuse a token minted from the old ones).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update(k.path());
            h.update([0]);
            h.update(v);
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    }
}

/// A domain event as a connector receives it.
#[derive(Debug, Clone)]
pub struct ConnectorEvent {
    /// Event id.
    pub event_id: Uuid,
    /// `product.updated`…
    pub event_type: String,
    /// The event's `data`.
    pub data: Value,
}

/// What an outbound sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// `listing`, `inventory`, `shipment`…
    pub entity_type: String,
    /// Records written to the channel.
    pub records: u32,
    /// Set when nothing needed doing, with why (e.g. an order that did not come from this channel).
    pub skipped: Option<String>,
}

/// A record pulled from the channel, to publish as a domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct PolledRecord {
    /// The channel's id (deduplicated per config: a record is published once).
    pub external_id: String,
    /// Event type to publish.
    pub event_type: String,
    /// Event data.
    pub data: Value,
}

/// What an inbound poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    /// `order`…
    pub entity_type: String,
    /// Records found (already-published ones are dropped when written).
    pub records: Vec<PolledRecord>,
    /// Where the next poll starts; `None` keeps the current cursor.
    pub cursor: Option<String>,
}

/// Why a connector call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The channel or the network failed (retryable or not, per `SyncFailure::permanent`).
    #[error("{}", .0.reason)]
    Channel(SyncFailure),
    /// The event's payload cannot be mapped: no retry can fix it.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Credentials are missing or malformed: fix them, then re-trigger.
    #[error("{0}")]
    Credentials(String),
    /// The config's settings are invalid: fix them, then re-trigger.
    #[error("{0}")]
    Settings(String),
    /// Our own rate limiter for this config (or a long `Retry-After` it is honouring) says to wait this long:
    /// the job is deferred without counting an attempt, and no worker slot is held meanwhile.
    #[error("rate limit of this config: next call allowed in {} ms", .0.as_millis())]
    RateLimited(std::time::Duration),
}

impl ConnectorError {
    /// The failure as the retry schedule sees it.
    pub fn as_failure(&self) -> SyncFailure {
        match self {
            Self::Channel(f) => f.clone(),
            other => SyncFailure {
                reason: other.to_string(),
                status: None,
                retry_after: None,
                permanent: true,
            },
        }
    }
}

/// What an adapter gets for one call.
pub struct ConnectorContext<'a> {
    /// The config.
    pub config: &'a ConnectorConfig,
    /// Its credentials.
    pub credentials: &'a Credentials,
    /// HTTP to the channel, rate limited per config.
    pub channel: &'a Channel,
    /// The service clock's now.
    pub now: DateTime<Utc>,
}

/// A sales channel.
#[async_trait]
pub trait ConnectorAdapter: Send + Sync {
    /// The `connector_type` this adapter serves.
    fn connector_type(&self) -> &'static str;
    /// Domain events it can handle (also a new config's default subscriptions).
    fn supported_events(&self) -> &'static [&'static str];
    /// Credentials it needs.
    fn required_credentials(&self) -> &'static [CredentialField];
    /// Rate limit when the settings do not set one.
    fn default_rate_limit(&self) -> RateLimit;
    /// Whether it pulls changes with [`ConnectorAdapter::poll`].
    fn polls(&self) -> bool {
        false
    }
    /// Validate settings at setup (the same parsing runs at every call).
    fn check_settings(&self, settings: &Value) -> Result<(), String>;
    /// Push one domain event to the channel (outbound).
    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError>;
    /// Pull what changed since `cursor` (inbound).
    async fn poll(
        &self,
        _ctx: &ConnectorContext<'_>,
        _cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        Err(ConnectorError::Settings(format!(
            "{} does not poll",
            self.connector_type()
        )))
    }
    /// Prove the credentials and settings work with one cheap authenticated call; returns what was checked.
    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError>;
}

/// Parse a settings object into an adapter's settings type, naming the bad field.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &Value,
) -> Result<T, ConnectorError> {
    serde_json::from_value(settings.clone())
        .map_err(|e| ConnectorError::Settings(format!("invalid settings: {e}")))
}

/// `connector_type` → adapter.
#[derive(Clone, Default)]
pub struct Registry {
    adapters: BTreeMap<&'static str, Arc<dyn ConnectorAdapter>>,
}

impl Registry {
    /// Amazon, eBay and Google Shopping, calling the deployment's `endpoints`.
    pub fn standard(endpoints: &crate::connectors::ChannelEndpoints) -> Self {
        use crate::connectors::{amazon::Amazon, ebay::Ebay, google::GoogleShopping};
        Self::default()
            .with(Arc::new(Amazon::new(endpoints.amazon.clone())))
            .with(Arc::new(Ebay::new(endpoints.ebay.clone())))
            .with(Arc::new(GoogleShopping::new(
                endpoints.google_shopping.clone(),
            )))
    }

    /// Add (or replace) an adapter.
    pub fn with(mut self, adapter: Arc<dyn ConnectorAdapter>) -> Self {
        self.adapters.insert(adapter.connector_type(), adapter);
        self
    }

    /// The adapter of a type.
    pub fn get(&self, connector_type: &str) -> Option<&Arc<dyn ConnectorAdapter>> {
        self.adapters.get(connector_type)
    }

    /// Every adapter, by type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn ConnectorAdapter>> {
        self.adapters.values()
    }
}
