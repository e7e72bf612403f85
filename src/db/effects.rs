//! Writes the effects of a batch of finished jobs with set-based statements, in the caller's transaction:
//! a handful of statements per flush whatever its size, so the worker is not bound by one commit per delivery.

use std::time::Duration;

use jobs::Job;
use jobs::webhook::{DeliverWebhook, Effect};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;
use workflows::{AttemptOutcome, DeliveryStatus};

use super::deliveries::published_event;
use super::queue;

/// Apply `effects`; the conditional updates skip deliveries that moved on meanwhile (re-triggered, cancelled).
pub async fn apply(
    conn: &mut PgConnection,
    effects: &[&Effect],
    publish_topic: &str,
) -> anyhow::Result<()> {
    let records: Vec<_> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Record(r) = e {
                Some(r.as_ref())
            } else {
                None
            }
        })
        .collect();
    let mut next_jobs: Vec<(Job, Duration)> = Vec::new();
    let mut outbox: Vec<(String, Value)> = Vec::new();

    if !records.is_empty() {
        let mut a = AttemptColumns::default();
        for r in &records {
            let (http_status, error, elapsed_ms, outcome) = match &r.outcome {
                AttemptOutcome::Delivered { status, elapsed_ms } => {
                    (Some(i32::from(*status)), None, *elapsed_ms, "DELIVERED")
                }
                AttemptOutcome::Failed {
                    reason,
                    status,
                    elapsed_ms,
                    ..
                } => (
                    status.map(i32::from),
                    Some(reason.to_string()),
                    *elapsed_ms,
                    "FAILED",
                ),
            };
            a.delivery_id.push(r.delivery.delivery_id);
            a.dispatch_seq.push(r.delivery.dispatch_seq);
            a.attempt_number.push(r.attempt_number as i32);
            a.outcome.push(outcome.to_owned());
            a.started_at.push(r.started_at);
            a.finished_at.push(r.finished_at);
            a.http_status.push(http_status);
            a.response_body.push(r.response_body.clone());
            a.elapsed_ms
                .push(elapsed_ms.clamp(0, i64::from(i32::MAX)) as i32);
            a.error.push(error);
            a.worker.push(r.worker.clone());
            a.status.push(r.decision.status.as_str().to_owned());
            a.next_retry_at.push(r.decision.next_retry_at);
            a.delivered_at.push(r.decision.delivered_at);
            a.bump.push(i32::from(r.decision.next_retry_at.is_some()));
        }
        // Every attempt is logged, even one whose delivery moved on while we were sending.
        sqlx::query(
            "INSERT INTO webhook_delivery_attempts
               (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at, http_status, response_body, response_time_ms, error, worker)
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                                  $7::int[], $8::text[], $9::int[], $10::text[], $11::text[])
             ON CONFLICT (delivery_id, dispatch_seq) DO NOTHING",
        )
        .bind(&a.delivery_id)
        .bind(&a.dispatch_seq)
        .bind(&a.attempt_number)
        .bind(&a.outcome)
        .bind(&a.started_at)
        .bind(&a.finished_at)
        .bind(&a.http_status)
        .bind(&a.response_body)
        .bind(&a.elapsed_ms)
        .bind(&a.error)
        .bind(&a.worker)
        .execute(&mut *conn)
        .await?;
        let applied: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE webhook_deliveries d SET
               status = i.status, attempt_number = i.attempt_number, next_retry_at = i.next_retry_at,
               delivered_at = COALESCE(i.delivered_at, d.delivered_at), http_status = i.http_status,
               response_body = i.response_body, response_time_ms = i.response_time_ms, last_error = i.error,
               dispatch_seq = d.dispatch_seq + i.bump, updated_at = now()
             FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[],
                         $7::int[], $8::text[], $9::int[], $10::text[], $11::int[])
                  AS i(delivery_id, dispatch_seq, status, attempt_number, next_retry_at, delivered_at,
                       http_status, response_body, response_time_ms, error, bump)
             WHERE d.delivery_id = i.delivery_id AND d.dispatch_seq = i.dispatch_seq AND d.status IN ('PENDING', 'FAILED')
             RETURNING d.delivery_id",
        )
        .bind(&a.delivery_id)
        .bind(&a.dispatch_seq)
        .bind(&a.status)
        .bind(&a.attempt_number)
        .bind(&a.next_retry_at)
        .bind(&a.delivered_at)
        .bind(&a.http_status)
        .bind(&a.response_body)
        .bind(&a.elapsed_ms)
        .bind(&a.error)
        .bind(&a.bump)
        .fetch_all(&mut *conn)
        .await?;
        for r in records
            .iter()
            .filter(|r| applied.contains(&r.delivery.delivery_id))
        {
            let d = &r.delivery;
            if let Some(run_in) = r.next_run_in.filter(|_| r.decision.next_retry_at.is_some()) {
                next_jobs.push((
                    Job::WebhookDelivery(DeliverWebhook {
                        delivery_id: d.delivery_id,
                        dispatch_seq: d.dispatch_seq + 1,
                    }),
                    run_in,
                ));
            }
            let mut data = json!({"deliveryId": d.delivery_id, "subscriptionId": d.subscription_id, "storeId": d.store_id, "eventType": d.event_type});
            let kind = match r.decision.status {
                DeliveryStatus::Delivered => "webhook.delivered",
                DeliveryStatus::DeadLettered => {
                    data["reason"] = json!(r.outcome_reason());
                    "webhook.dead_lettered"
                }
                _ => continue,
            };
            outbox.push((
                d.delivery_id.to_string(),
                published_event(kind, &d.store_id, data),
            ));
        }
    }

    let (mut ids, mut seqs, mut reasons) = (Vec::new(), Vec::new(), Vec::new());
    for e in effects {
        if let Effect::Cancel {
            delivery_id,
            dispatch_seq,
            reason,
        } = e
        {
            ids.push(*delivery_id);
            seqs.push(*dispatch_seq);
            reasons.push(reason.clone());
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE webhook_deliveries d SET status = 'CANCELLED', next_retry_at = NULL, last_error = i.reason, updated_at = now()
             FROM unnest($1::uuid[], $2::int[], $3::text[]) AS i(delivery_id, dispatch_seq, reason)
             WHERE d.delivery_id = i.delivery_id AND d.dispatch_seq = i.dispatch_seq AND d.status IN ('PENDING', 'FAILED')",
        )
        .bind(&ids)
        .bind(&seqs)
        .bind(&reasons)
        .execute(&mut *conn)
        .await?;
    }

    let deferred: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Defer {
                delivery_id,
                dispatch_seq,
                run_in,
                reason,
            } => Some((*delivery_id, *dispatch_seq, *run_in, reason.clone())),
            _ => None,
        })
        .collect();
    if !deferred.is_empty() {
        let ids: Vec<Uuid> = deferred.iter().map(|d| d.0).collect();
        let seqs: Vec<i32> = deferred.iter().map(|d| d.1).collect();
        let reasons: Vec<Option<String>> = deferred
            .iter()
            .map(|d| {
                d.3.as_ref()
                    .map(|r| format!("deferred, no attempt counted: {r}"))
            })
            .collect();
        let moved: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE webhook_deliveries d SET dispatch_seq = d.dispatch_seq + 1, last_error = COALESCE(i.reason, d.last_error), updated_at = now()
             FROM unnest($1::uuid[], $2::int[], $3::text[]) AS i(delivery_id, dispatch_seq, reason)
             WHERE d.delivery_id = i.delivery_id AND d.dispatch_seq = i.dispatch_seq AND d.status IN ('PENDING', 'FAILED')
             RETURNING d.delivery_id",
        )
        .bind(&ids)
        .bind(&seqs)
        .bind(&reasons)
        .fetch_all(&mut *conn)
        .await?;
        for (delivery_id, dispatch_seq, run_in, _) in
            deferred.into_iter().filter(|d| moved.contains(&d.0))
        {
            next_jobs.push((
                Job::WebhookDelivery(DeliverWebhook {
                    delivery_id,
                    dispatch_seq: dispatch_seq + 1,
                }),
                run_in,
            ));
        }
    }

    queue::push(conn, next_jobs).await?;
    if !outbox.is_empty() {
        let (keys, payloads): (Vec<String>, Vec<Value>) = outbox.into_iter().unzip();
        sqlx::query("INSERT INTO outbox (topic, message_key, payload) SELECT $1, * FROM unnest($2::text[], $3::jsonb[])")
            .bind(publish_topic)
            .bind(&keys)
            .bind(&payloads)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[derive(Default)]
struct AttemptColumns {
    delivery_id: Vec<Uuid>,
    dispatch_seq: Vec<i32>,
    attempt_number: Vec<i32>,
    outcome: Vec<String>,
    started_at: Vec<chrono::DateTime<chrono::Utc>>,
    finished_at: Vec<chrono::DateTime<chrono::Utc>>,
    http_status: Vec<Option<i32>>,
    response_body: Vec<Option<String>>,
    elapsed_ms: Vec<i32>,
    error: Vec<Option<String>>,
    worker: Vec<String>,
    status: Vec<String>,
    next_retry_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    delivered_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    bump: Vec<i32>,
}

trait OutcomeReason {
    fn outcome_reason(&self) -> String;
}

impl OutcomeReason for jobs::ports::AttemptRecord {
    fn outcome_reason(&self) -> String {
        match &self.outcome {
            AttemptOutcome::Failed { reason, .. } => reason.to_string(),
            AttemptOutcome::Delivered { .. } => String::new(),
        }
    }
}
