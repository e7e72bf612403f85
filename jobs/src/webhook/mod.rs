//! The webhook delivery kind of outbound job, all of its specifics: its payload, how an attempt is prepared (the
//! signing secret) and sent (a signed POST), and how its rows are stored (`table`). The engine
//! ([`crate::attempt`]) and the writer ([`crate::queue::attempts`]) do the rest, as for every kind.

pub mod order;
mod stats;
mod table;

pub use table::{SendRow, to_send};

pub use stats::ADD_COUNTERS;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connectors::RateGate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use workflows::attempt::AttemptState;
use workflows::ids::{DeliveryId, SubscriptionId};
use workflows::ratelimit::{RateLimit, Reservation};
use workflows::{AttemptOutcome, FailureReason, signing};

use crate::Job;
use crate::attempt::{
    AttemptRecord, Handled, KindEffect, OutboundKind, Pacing, Sent, Unprepared, run,
};
use crate::ports::{
    DeliveryToSend, OutgoingRequest, SecretError, SendResult, SigningKeys, SigningSecrets,
    WebhookSender,
};

/// Make attempt number `dispatch_seq` of a delivery (stale if the delivery has moved on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    /// The delivery to attempt.
    pub delivery_id: DeliveryId,
    /// The delivery's `dispatch_seq` when this job was queued.
    pub dispatch_seq: i32,
    /// Its subscription: the lane the job is claimed in (per-subscription concurrency and fair turns).
    pub subscription_id: SubscriptionId,
}

/// The effect of a delivery job.
pub type Effect = KindEffect<WebhookDeps>;

/// A recorded delivery attempt.
pub type WebhookRecord = AttemptRecord<DeliveryToSend, SendResult>;

/// Dependencies of the handler.
#[derive(Clone)]
pub struct WebhookDeps {
    /// Posts the signed requests to receivers.
    pub sender: Arc<dyn WebhookSender>,
    /// Reads subscriptions' signing secrets.
    pub secrets: Arc<dyn SigningSecrets>,
    /// Clock, time scale, secret retry and worker name.
    pub pacing: Pacing,
    /// The shared rate limiter: subscriptions' `maxPerSecond` (one state per subscription for every worker).
    pub rate_gate: Arc<dyn RateGate>,
}

/// The bucket of a subscription's deliveries in the shared rate limiter (its lane is the subscription).
pub const DELIVERIES_BUCKET: &str = "deliveries";

/// Longest a rate-limited attempt waits in place for its turn; a later turn re-queues it instead (waiting never
/// holds a worker slot longer, and never counts as an attempt).
const MAX_INLINE_WAIT: Duration = Duration::from_millis(100);

/// Whether `delivery` may go out now under its subscription's rate limit (after a wait of at most
/// [`MAX_INLINE_WAIT`]), or when to try again.
async fn take_turn(deps: &WebhookDeps, delivery: &DeliveryToSend) -> Result<(), Sent<SendResult>> {
    let Some(per_second) = delivery.max_per_second else {
        return Ok(());
    };
    let limit = RateLimit {
        per_second,
        burst: 1,
    };
    let lane = delivery.subscription_id.uuid();
    let reserved = deps
        .rate_gate
        .reserve(lane, DELIVERIES_BUCKET, limit, MAX_INLINE_WAIT)
        .await;
    match reserved {
        Ok(Reservation::Granted { wait, .. }) => {
            if let Ok(wait) = wait.to_std() {
                tokio::time::sleep(wait).await;
            }
            Ok(())
        }
        Ok(Reservation::Denied { wait }) => Err(Sent::Deferred {
            run_in: wait.to_std().unwrap_or_default(),
            reason: format!("paced: the subscription's limit of {per_second} deliveries/s"),
        }),
        Err(e) => Err(Sent::Deferred {
            run_in: Duration::from_secs(1),
            reason: format!("rate limiter unavailable: {e}"),
        }),
    }
}

#[async_trait]
impl OutboundKind for WebhookDeps {
    type Id = DeliveryId;
    type Loaded = DeliveryToSend;
    type Prepared = SigningKeys;
    type Extras = SendResult;

    const NAME: &'static str = "webhook_delivery";
    const INACTIVE_REASON: &'static str = "subscription deactivated or deleted";

    fn id(loaded: &DeliveryToSend) -> DeliveryId {
        loaded.delivery_id
    }

    fn state(loaded: &DeliveryToSend) -> &AttemptState {
        &loaded.state
    }

    fn owner_active(loaded: &DeliveryToSend) -> bool {
        loaded.subscription_active
    }

    fn owner(loaded: &DeliveryToSend) -> Uuid {
        loaded.subscription_id.uuid()
    }

    fn job(delivery_id: DeliveryId, owner: Uuid, dispatch_seq: i32) -> Job {
        Job::WebhookDelivery(DeliverWebhook {
            delivery_id,
            dispatch_seq,
            subscription_id: SubscriptionId(owner),
        })
    }

    fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    fn trace_context(loaded: &DeliveryToSend) -> Option<&str> {
        loaded.trace_context.as_deref()
    }

    fn answer_time(sent: &SendResult) -> Option<Duration> {
        match &sent.outcome {
            AttemptOutcome::Failed {
                reason: FailureReason::Timeout,
                ..
            } => None,
            outcome => Some(Duration::from_millis(
                u64::try_from(outcome.elapsed_ms()).unwrap_or(0),
            )),
        }
    }

    async fn prepare(&self, delivery: &DeliveryToSend) -> Result<SigningKeys, Unprepared> {
        let (id, keys) = (delivery.subscription_id, delivery.keys);
        let current = secret(self, id, keys.current).await?.ok_or_else(|| {
            Unprepared::Fatal(anyhow::anyhow!("subscription {id} has no signing secret"))
        })?;
        // During a rotation's grace the previous secret signs too (a receiver may still verify with it).
        let previous = match keys.previous_at(self.pacing.clock.now()) {
            Some(version) => secret(self, id, version).await?,
            None => None,
        };
        Ok(SigningKeys { current, previous })
    }

    async fn send(
        &self,
        delivery: &DeliveryToSend,
        keys: SigningKeys,
        _started_at: DateTime<Utc>,
    ) -> Sent<SendResult> {
        if let Err(deferred) = take_turn(self, delivery).await {
            return deferred;
        }
        // Receivers check this timestamp against their own clock (5 minutes either way), so it is the wall
        // clock, never the service clock (which runs fast under worker.time_scale, or is a test's manual clock).
        let request = build_request(delivery, &keys, Utc::now().timestamp());
        let sent = self.sender.send(request).await;
        let last_error = match &sent.outcome {
            AttemptOutcome::Failed { reason, .. } => Some(reason.to_string()),
            AttemptOutcome::Delivered { .. } => None,
        };
        Sent::Made {
            outcome: sent.outcome.outcome(),
            last_error,
            extras: sent,
        }
    }
}

/// Version `version` of a subscription's secret (`None`: there is none).
async fn secret(
    deps: &WebhookDeps,
    id: SubscriptionId,
    version: i32,
) -> Result<Option<String>, Unprepared> {
    match deps.secrets.signing_secret(id, version).await {
        Ok(secret) => Ok(Some(secret)),
        Err(SecretError::NotFound) => Ok(None),
        Err(SecretError::Unavailable(why)) => Err(Unprepared::SecretsUnavailable(why)),
    }
}

/// Handle one delivery job whose delivery was loaded as `delivery`. `Err` means our own infrastructure failed.
pub async fn handle(
    deps: &WebhookDeps,
    job: &DeliverWebhook,
    delivery: Option<DeliveryToSend>,
) -> anyhow::Result<(Handled, Effect)> {
    run(deps, job.dispatch_seq, delivery).await
}

/// The bytes POSTed (and signed) for an event's body: serialised once per event by the worker's load, and the same
/// way wherever the signatures sent are recomputed (the admin panel's headers).
pub fn body_bytes(payload: &serde_json::Value) -> bytes::Bytes {
    serde_json::to_vec(payload).unwrap_or_default().into()
}

/// The signed POST for a delivery. The body is serialised once and those exact bytes are signed and sent:
/// `X-SS3-Signature` with the current secret, `webhook-signature` with the current and, during a rotation's grace,
/// the previous one (`v1,<new> v1,<old>`, as Standard Webhooks allows).
pub fn build_request(
    delivery: &DeliveryToSend,
    keys: &SigningKeys,
    unix_now: i64,
) -> OutgoingRequest {
    let body = delivery.body.clone();
    let id = delivery.delivery_id.to_string();
    let mut standard = signing::standard_signature(&keys.current, &id, unix_now, &body);
    if let Some(previous) = &keys.previous {
        standard.push(' ');
        standard.push_str(&signing::standard_signature(previous, &id, unix_now, &body));
    }
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "ShopSTAR3-Webhooks/1.0".to_owned()),
        ("x-ss3-event".to_owned(), delivery.event_type.clone()),
        ("x-ss3-delivery".to_owned(), id.clone()),
        (
            "x-ss3-signature".to_owned(),
            signing::ss3_signature(&keys.current, &body),
        ),
        ("webhook-id".to_owned(), id.clone()),
        ("webhook-timestamp".to_owned(), unix_now.to_string()),
        ("webhook-signature".to_owned(), standard),
    ];
    OutgoingRequest {
        url: delivery.target_url.clone(),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    //! The webhook kind through the attempt engine, with every port faked.

    use std::sync::Mutex;

    use chrono::TimeZone;
    use uuid::Uuid;
    use workflows::DeliveryStatus;
    use workflows::ids::SubscriptionId;

    use super::*;
    use crate::attempt::DeferCause;

    /// Answers every POST with `status`, and counts them.
    struct Receiver {
        status: u16,
        sent: Mutex<usize>,
    }

    #[async_trait]
    impl WebhookSender for Receiver {
        async fn send(&self, _: OutgoingRequest) -> SendResult {
            *self.sent.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            let outcome = if workflows::delivery::is_success(self.status) {
                AttemptOutcome::Delivered {
                    status: self.status,
                    elapsed_ms: 2,
                }
            } else {
                let reason = workflows::FailureReason::HttpStatus(self.status);
                AttemptOutcome::Failed {
                    reason,
                    status: Some(self.status),
                    elapsed_ms: 2,
                    retry_after: None,
                }
            };
            SendResult {
                outcome,
                response_body: None,
            }
        }
    }

    /// A secret store that is sealed (`None`) or answers one secret.
    struct Secrets(Option<&'static str>);

    #[async_trait]
    impl SigningSecrets for Secrets {
        async fn signing_secret(&self, _: SubscriptionId, _: i32) -> Result<String, SecretError> {
            self.0
                .map(str::to_owned)
                .ok_or_else(|| SecretError::Unavailable("sealed".into()))
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn deps(status: u16, secret: Option<&'static str>) -> (WebhookDeps, Arc<Receiver>) {
        let receiver = Arc::new(Receiver {
            status,
            sent: Mutex::new(0),
        });
        let deps = WebhookDeps {
            sender: receiver.clone(),
            secrets: Arc::new(Secrets(secret)),
            pacing: Pacing::manual(t0()),
            rate_gate: Arc::new(crate::fakes::Gate(None)),
        };
        (deps, receiver)
    }

    fn delivery(
        attempts: u32,
        next_retry_at: Option<DateTime<Utc>>,
        active: bool,
    ) -> DeliveryToSend {
        DeliveryToSend {
            delivery_id: DeliveryId(Uuid::nil()),
            subscription_id: SubscriptionId(Uuid::nil()),
            store_id: "s".into(),
            event_type: "order.created".into(),
            body: bytes::Bytes::from_static(br#"{"eventType":"order.created"}"#),
            occurred_at: chrono::Utc::now(),
            state: AttemptState {
                status: if attempts == 0 {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                },
                attempt_number: attempts,
                next_retry_at,
                dispatch_seq: 4,
            },
            target_url: "https://example.com/hook".into(),
            subscription_active: active,
            keys: crate::ports::KeyVersions::default(),
            max_per_second: None,
            trace_context: None,
            ordered: false,
        }
    }

    const JOB: DeliverWebhook = DeliverWebhook {
        delivery_id: DeliveryId(Uuid::nil()),
        dispatch_seq: 4,
        subscription_id: SubscriptionId(Uuid::nil()),
    };

    async fn handled(
        deps: &WebhookDeps,
        job: &DeliverWebhook,
        loaded: DeliveryToSend,
    ) -> (Handled, Effect) {
        handle(deps, job, Some(loaded))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn an_attempt_is_recorded_with_the_shared_decision() {
        let (d, receiver) = deps(503, Some("k"));
        let (h, effect) = handled(&d, &JOB, delivery(1, Some(t0()), true)).await;
        assert_eq!(
            h,
            Handled::Attempted {
                status: DeliveryStatus::Failed
            }
        );
        let Effect::Record(r) = effect else {
            panic!("not recorded")
        };
        assert_eq!(r.attempt_number, 2);
        assert_eq!(
            r.decision.next_retry_at,
            Some(t0() + chrono::Duration::minutes(5))
        );
        assert_eq!(r.next_run_in, Some(Duration::from_secs(300)));
        assert_eq!(r.last_error.as_deref(), Some("receiver answered HTTP 503"));
        assert_eq!(*receiver.sent.lock().unwrap_or_else(|p| p.into_inner()), 1);

        let (d, _) = deps(204, Some("k"));
        let (h, _) = handled(&d, &JOB, delivery(0, None, true)).await;
        assert_eq!(
            h,
            Handled::Attempted {
                status: DeliveryStatus::Delivered
            }
        );
    }

    #[tokio::test]
    async fn the_pre_flight_sends_nothing_when_stale_early_cancelled_or_sealed() {
        let (d, receiver) = deps(204, None);
        let stale = DeliverWebhook {
            dispatch_seq: 3,
            ..JOB
        };
        assert!(matches!(
            handled(&d, &stale, delivery(1, None, true)).await,
            (Handled::Stale, Effect::None)
        ));
        assert!(matches!(
            handle(&d, &JOB, None).await,
            Ok((Handled::Stale, Effect::None))
        ));
        let early = delivery(1, Some(t0() + chrono::Duration::minutes(1)), false);
        assert!(matches!(
            handled(&d, &JOB, early).await,
            (Handled::NotYetDue, Effect::Defer { run_in, reason: None, .. }) if run_in == Duration::from_secs(60)
        ));
        assert!(matches!(
            handled(&d, &JOB, delivery(1, None, false)).await,
            (
                Handled::Cancelled,
                Effect::Cancel {
                    dispatch_seq: 4,
                    ..
                }
            )
        ));
        let (h, effect) = handled(&d, &JOB, delivery(1, None, true)).await;
        assert_eq!(h, Handled::Deferred(DeferCause::SecretsUnavailable));
        assert!(
            matches!(effect, Effect::Defer { run_in, reason: Some(_), .. } if run_in == Duration::from_secs(30))
        );
        assert_eq!(*receiver.sent.lock().unwrap_or_else(|p| p.into_inner()), 0);
    }
}
