//! What the framework and the adapters exchange: a config, an event, the reports of a sync and a poll, the
//! context of one call, and why a call failed.

use chrono::{DateTime, Utc};
use serde_json::Value;
use workflows::catalog::PayloadError;
use workflows::connector::{SyncFailure, entity_of};
use workflows::ids::{ConnectorId, EventId};

use crate::channel::ChannelClient;
use crate::credentials::Credentials;

/// A store's configuration of one connector (its non-secret part), as stored.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// The config's id; also the key of its credentials in the secret store.
    pub config_id: ConnectorId,
    /// The store that owns the config.
    pub store_id: String,
    /// Which adapter serves it: `amazon`, `ebay`, `google_shopping`.
    pub connector_type: String,
    /// Settings as stored (seller and marketplace ids, region, rate limit; never URLs). Adapters get them parsed,
    /// through [`crate::Registry::parse_stored_settings`].
    pub settings: Value,
}

/// A domain event as a connector receives it.
#[derive(Debug, Clone)]
pub struct ConnectorEvent {
    /// The platform's event id.
    pub event_id: EventId,
    /// Dotted event type, e.g. `product.updated`.
    pub event_type: String,
    /// The event's `data` object.
    pub data: Value,
}

/// What an outbound sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// What was written: `listing`, `inventory`, `shipment`…
    pub entity_type: String,
    /// Records written to the channel.
    pub records: u32,
    /// Set when nothing needed doing, with why (e.g. an order that did not come from this marketplace).
    pub skipped: Option<String>,
    /// What the sync left out on purpose although it wrote records, for the sync log (e.g. eBay offers not
    /// published yet).
    pub note: Option<String>,
}

impl SyncReport {
    /// A report of `records` written `entity_type` records.
    pub fn written(entity_type: &str, records: usize) -> Self {
        Self {
            entity_type: entity_type.to_owned(),
            records: u32::try_from(records).unwrap_or(u32::MAX),
            skipped: None,
            note: None,
        }
    }

    /// The report with a note for the sync log (none when `note` is `None`).
    pub fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// A report of nothing done, with why.
    pub fn skipped(entity_type: &str, why: impl Into<String>) -> Self {
        Self {
            entity_type: entity_type.to_owned(),
            records: 0,
            skipped: Some(why.into()),
            note: None,
        }
    }

    /// A report of an event the adapter does not sync to `marketplace` (every adapter's fallback).
    pub fn not_synced(event_type: &str, marketplace: &str) -> Self {
        Self::skipped(
            entity_of(event_type),
            format!("{event_type} is not synced to {marketplace}"),
        )
    }
}

/// A record pulled from the channel, to publish as a domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct PolledRecord {
    /// The channel's id of the record (deduplicated per config: a record is published once).
    pub external_id: String,
    /// Event type to publish it as.
    pub event_type: String,
    /// The published event's `data`.
    pub data: Value,
}

/// What an inbound poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    /// What was read: `order`…
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
    /// The config the call is for.
    pub config: &'a ConnectorConfig,
    /// Its credentials from the secret store.
    pub credentials: &'a Credentials,
    /// HTTP to the channel, rate limited per config.
    pub channel: &'a ChannelClient,
    /// The service clock's now.
    pub now: DateTime<Utc>,
}
