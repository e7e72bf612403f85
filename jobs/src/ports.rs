//! The I/O a handler needs, as small traits implemented by the service (Postgres, reqwest, Vault…) and by tests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use workflows::{AttemptOutcome, DeliveryStatus, OutcomeDecision};

/// A delivery as the worker needs it to make an attempt.
#[derive(Debug, Clone)]
pub struct DeliveryToSend {
    /// Delivery id (`X-SS3-Delivery`, `webhook-id`).
    pub delivery_id: Uuid,
    /// Its subscription.
    pub subscription_id: Uuid,
    /// Its store.
    pub store_id: String,
    /// Event type (`X-SS3-Event`).
    pub event_type: String,
    /// The body to POST.
    pub payload: Value,
    /// Current status.
    pub status: DeliveryStatus,
    /// Attempts made in the current schedule.
    pub attempt_number: u32,
    /// When the next attempt is due (set while FAILED).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Number of the attempt currently queued; jobs with another number are stale.
    pub dispatch_seq: i32,
    /// Where to POST.
    pub target_url: String,
    /// False when the subscription was deactivated or deleted.
    pub subscription_active: bool,
}

/// Everything recorded after an attempt, written in one transaction.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery as loaded before the attempt.
    pub delivery: DeliveryToSend,
    /// 1-based attempt number in the schedule.
    pub attempt_number: u32,
    /// When the request started.
    pub started_at: DateTime<Utc>,
    /// When the answer (or the failure) came.
    pub finished_at: DateTime<Utc>,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// The receiver's body, truncated.
    pub response_body: Option<String>,
    /// The state the delivery moves to.
    pub decision: OutcomeDecision,
    /// Real time until the next attempt's task becomes due (scaled by `time_scale`), when there is one.
    pub next_run_in: Option<std::time::Duration>,
    /// Worker name for the log.
    pub worker: String,
}

/// An HTTP POST to a receiver.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// Target URL.
    pub url: String,
    /// Headers, signature included.
    pub headers: Vec<(String, String)>,
    /// Exact bytes that were signed.
    pub body: Vec<u8>,
}

/// What the sender observed.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// Delivered or failed (never an `Err`: a receiver failing is an outcome, not our error).
    pub outcome: AttemptOutcome,
    /// The receiver's body, truncated to the configured limit.
    pub response_body: Option<String>,
}

/// Sends webhooks.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POST the request and report what happened.
    async fn send(&self, request: OutgoingRequest) -> SendResult;
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// There is no such secret.
    #[error("secret not found")]
    NotFound,
    /// The store is unreachable right now; try later without counting an attempt.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
}

/// Reads signing secrets.
#[async_trait]
pub trait SigningSecrets: Send + Sync {
    /// The signing secret of a subscription.
    async fn signing_secret(&self, subscription_id: Uuid) -> Result<String, SecretError>;
}
