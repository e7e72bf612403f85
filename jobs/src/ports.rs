//! The I/O a handler needs, as small traits implemented by the service (Postgres, reqwest, Vault…) and by tests.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use workflows::AttemptOutcome;
use workflows::attempt::AttemptState;
use workflows::ids::{DeliveryId, SubscriptionId};

/// A delivery as the worker needs it to make an attempt.
#[derive(Debug, Clone)]
pub struct DeliveryToSend {
    /// The delivery (`X-SS3-Delivery`, `webhook-id`).
    pub delivery_id: DeliveryId,
    /// The subscription it belongs to (its signing secret signs the body).
    pub subscription_id: SubscriptionId,
    /// The store the event came from.
    pub store_id: String,
    /// Event type (`X-SS3-Event`).
    pub event_type: String,
    /// The JSON body to POST, the exact bytes signed: the event's, stored once, loaded and serialised once per
    /// claimed batch, and shared (not copied) by its deliveries and the requests that send them.
    pub body: Bytes,
    /// When the event occurred (where the delivery latency starts).
    pub occurred_at: DateTime<Utc>,
    /// Status, attempts made, due time and the attempt queued.
    pub state: AttemptState,
    /// Where to POST.
    pub target_url: String,
    /// False when the subscription was deactivated or deleted.
    pub subscription_active: bool,
    /// The subscription's signing keys: the current version, and until when the previous one also signs.
    pub keys: KeyVersions,
    /// The subscription's limit of deliveries per second, across every worker (`None`: unlimited).
    pub max_per_second: Option<f64>,
    /// The event's trace context, stored at fan-out when tracing is exported (see [`crate::trace`]).
    pub trace_context: Option<String>,
    /// It is in an ordered line (README, "Ordered delivery"): when it finishes, the line's next delivery goes on.
    pub ordered: bool,
}

/// Which signing secrets of a subscription sign its deliveries: version `current`, and during a rotation's grace
/// (until `previous_until`) version `current - 1` as well.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyVersions {
    /// The current secret's version (0: the one made with the subscription).
    pub current: i32,
    /// End of the previous secret's grace, if a rotation kept it.
    pub previous_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl KeyVersions {
    /// The previous version, if it still signs at `at` (its grace has not ended).
    pub fn previous_at(&self, at: chrono::DateTime<chrono::Utc>) -> Option<i32> {
        self.previous_until
            .filter(|until| *until > at && self.current > 0)
            .map(|_| self.current - 1)
    }
}

/// The secrets a delivery is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// The current secret (`X-SS3-Signature`, and the first `webhook-signature`).
    pub current: String,
    /// The previous secret during a rotation's grace (a second `webhook-signature`).
    pub previous: Option<String>,
}

/// An HTTP POST to a receiver.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The subscription's target URL.
    pub url: String,
    /// Headers, signature included.
    pub headers: Vec<(String, String)>,
    /// Exact bytes that were signed.
    pub body: Bytes,
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
    /// Version `version` of a subscription's signing secret.
    async fn signing_secret(
        &self,
        subscription_id: SubscriptionId,
        version: i32,
    ) -> Result<String, SecretError>;
}
