//! The webhook delivery job: decide what one job does, make the attempt, and return the effect as a value.
//! The runner writes the effects of many jobs, and their acknowledgements, in one transaction.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{Instrument, info_span};
use uuid::Uuid;
use workflows::{AttemptOutcome, DeliveryStatus, decide, signing};

use crate::clock::{Clock, real_wait};
use crate::ports::{
    AttemptRecord, DeliveryToSend, OutgoingRequest, SecretError, SigningSecrets, WebhookSender,
};

/// Make attempt number `dispatch_seq` of a delivery (stale if the delivery has moved on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    /// The delivery.
    pub delivery_id: Uuid,
    /// The delivery's `dispatch_seq` when this job was queued.
    pub dispatch_seq: i32,
}

/// What handling a delivery job came to (for metrics and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// An attempt was made.
    Attempted {
        outcome: AttemptOutcome,
        status: DeliveryStatus,
    },
    /// The job no longer applies (delivered, re-triggered, or unknown): nothing was sent.
    Stale,
    /// The subscription is inactive: retries stop.
    Cancelled,
    /// The signing secret could not be read: the attempt is deferred without counting it.
    Deferred,
    /// The job ran before the delivery's `next_retry_at` (clock skew, whole-second queue precision): re-queued for then.
    NotYetDue,
}

/// The state change a job asks for, written by the runner.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Nothing to write.
    None,
    /// Record an attempt and move the delivery on (next job, outbox event).
    Record(Box<AttemptRecord>),
    /// Stop retrying.
    Cancel {
        delivery_id: Uuid,
        dispatch_seq: i32,
        reason: String,
    },
    /// Queue the same attempt again after `run_in`, without counting it; `reason` becomes the last error.
    Defer {
        delivery_id: Uuid,
        dispatch_seq: i32,
        run_in: Duration,
        reason: Option<String>,
    },
}

/// Jobs may run this much before `next_retry_at`: apalis stores `run_at` in whole seconds.
pub const DUE_TOLERANCE: chrono::Duration = chrono::Duration::seconds(1);

/// Dependencies of the handler.
#[derive(Clone)]
pub struct WebhookDeps {
    /// HTTP.
    pub sender: Arc<dyn WebhookSender>,
    /// Signing secrets.
    pub secrets: Arc<dyn SigningSecrets>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Multiplies real waits between attempts (see `ScaledClock`).
    pub time_scale: f64,
    /// How long to wait before trying again when the secret store is unavailable.
    pub secret_retry: Duration,
    /// This worker's name, for the attempt log.
    pub worker: String,
}

/// Handle one delivery job whose delivery was loaded as `delivery`. `Err` means our own infrastructure failed.
pub async fn handle(
    deps: &WebhookDeps,
    job: &DeliverWebhook,
    delivery: Option<DeliveryToSend>,
) -> anyhow::Result<(Handled, Effect)> {
    let span = info_span!("webhook_delivery", delivery_id = %job.delivery_id, dispatch_seq = job.dispatch_seq, attempt = tracing::field::Empty);
    async move {
        let Some(delivery) = delivery else { return Ok((Handled::Stale, Effect::None)) };
        if delivery.dispatch_seq != job.dispatch_seq || !delivery.status.awaits_attempt() {
            return Ok((Handled::Stale, Effect::None));
        }
        let (delivery_id, dispatch_seq) = (delivery.delivery_id, delivery.dispatch_seq);
        let now = deps.clock.now();
        if let Some(due) = delivery.next_retry_at
            && due - DUE_TOLERANCE > now
        {
            let run_in = real_wait(due - now, deps.time_scale);
            return Ok((Handled::NotYetDue, Effect::Defer { delivery_id, dispatch_seq, run_in, reason: None }));
        }
        if !delivery.subscription_active {
            let reason = "subscription deactivated or deleted".to_owned();
            return Ok((Handled::Cancelled, Effect::Cancel { delivery_id, dispatch_seq, reason }));
        }
        let secret = match deps.secrets.signing_secret(delivery.subscription_id).await {
            Ok(secret) => secret,
            Err(SecretError::Unavailable(why)) => {
                tracing::warn!(%why, "signing secret unavailable; deferring without counting an attempt");
                let effect = Effect::Defer { delivery_id, dispatch_seq, run_in: deps.secret_retry, reason: Some(why) };
                return Ok((Handled::Deferred, effect));
            }
            Err(SecretError::NotFound) => anyhow::bail!("subscription {} has no signing secret", delivery.subscription_id),
        };
        let attempt_number = delivery.attempt_number + 1;
        tracing::Span::current().record("attempt", attempt_number);

        let started_at = deps.clock.now();
        // Receivers check this timestamp against their own clock (5 minutes either way), so it is the wall
        // clock, never the service clock (which runs fast under worker.time_scale, or is a test's manual clock).
        let request = build_request(&delivery, &secret, chrono::Utc::now().timestamp());
        let sent = deps.sender.send(request).await;
        let finished_at = deps.clock.now().max(started_at);
        let decision = decide(attempt_number, &sent.outcome, finished_at);
        let next_run_in = decision.next_retry_at.map(|at| real_wait(at - finished_at, deps.time_scale));
        let handled = Handled::Attempted { outcome: sent.outcome.clone(), status: decision.status };
        tracing::debug!(status = decision.status.as_str(), "attempt made");
        let record = AttemptRecord {
            delivery,
            attempt_number,
            started_at,
            finished_at,
            outcome: sent.outcome,
            response_body: sent.response_body,
            decision,
            next_run_in,
            worker: deps.worker.clone(),
        };
        Ok((handled, Effect::Record(Box::new(record))))
    }
    .instrument(span)
    .await
}

/// The signed POST for a delivery. The body is serialised once and those exact bytes are signed and sent.
pub fn build_request(delivery: &DeliveryToSend, secret: &str, unix_now: i64) -> OutgoingRequest {
    let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
    let id = delivery.delivery_id.to_string();
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "ShopSTAR3-Webhooks/1.0".to_owned()),
        ("x-ss3-event".to_owned(), delivery.event_type.clone()),
        ("x-ss3-delivery".to_owned(), id.clone()),
        (
            "x-ss3-signature".to_owned(),
            signing::ss3_signature(secret, &body),
        ),
        ("webhook-id".to_owned(), id.clone()),
        ("webhook-timestamp".to_owned(), unix_now.to_string()),
        (
            "webhook-signature".to_owned(),
            signing::standard_signature(secret, &id, unix_now, &body),
        ),
    ];
    OutgoingRequest {
        url: delivery.target_url.clone(),
        headers,
        body,
    }
}
