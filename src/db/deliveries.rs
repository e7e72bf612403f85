//! Webhook deliveries and their attempt log.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jobs::Job;
use jobs::ports::{AttemptRecord, DeliveryStore, DeliveryToSend};
use jobs::webhook::DeliverWebhook;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::{AttemptOutcome, DeliveryStatus};

use super::{outbox, queue};

/// Deliveries backed by Postgres; state changes, next jobs and outbox events commit together.
#[derive(Clone)]
pub struct PgDeliveryStore {
    /// Pool.
    pub pool: PgPool,
    /// Topic for webhook.delivered / webhook.dead_lettered.
    pub publish_topic: String,
}

#[derive(sqlx::FromRow)]
struct SendRow {
    delivery_id: Uuid,
    subscription_id: Uuid,
    store_id: String,
    event_type: String,
    event_payload: Value,
    status: String,
    attempt_number: i32,
    next_retry_at: Option<DateTime<Utc>>,
    dispatch_seq: i32,
    target_url: String,
    subscription_active: bool,
}

fn status(s: &str) -> anyhow::Result<DeliveryStatus> {
    DeliveryStatus::parse(s)
        .ok_or_else(|| anyhow::anyhow!("unknown delivery status {s:?} in the database"))
}

/// The envelope of an event we publish, with `data` as the event's own fields.
pub fn published_event(event_type: &str, store_id: &str, data: Value) -> Value {
    json!({
        "eventId": Uuid::new_v4(),
        "eventType": event_type,
        "storeId": store_id,
        "occurredAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

#[async_trait]
impl DeliveryStore for PgDeliveryStore {
    async fn load(&self, delivery_id: Uuid) -> anyhow::Result<Option<DeliveryToSend>> {
        let row: Option<SendRow> = sqlx::query_as(
            "SELECT d.delivery_id, d.subscription_id, d.store_id, d.event_type, d.event_payload, d.status,
                    d.attempt_number, d.next_retry_at, d.dispatch_seq, s.target_url, (s.is_active AND s.deleted_at IS NULL) AS subscription_active
             FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
             WHERE d.delivery_id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(DeliveryToSend {
                delivery_id: r.delivery_id,
                subscription_id: r.subscription_id,
                store_id: r.store_id,
                event_type: r.event_type,
                payload: r.event_payload,
                status: status(&r.status)?,
                attempt_number: r.attempt_number.max(0) as u32,
                next_retry_at: r.next_retry_at,
                dispatch_seq: r.dispatch_seq,
                target_url: r.target_url,
                subscription_active: r.subscription_active,
            })
        })
        .transpose()
    }

    async fn record_attempt(&self, rec: AttemptRecord) -> anyhow::Result<bool> {
        let d = &rec.delivery;
        let (http_status, error, elapsed_ms, outcome) = match &rec.outcome {
            AttemptOutcome::Delivered { status, elapsed_ms } => {
                (Some(*status as i32), None, *elapsed_ms, "DELIVERED")
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
        let retry = rec.decision.next_retry_at.is_some();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_delivery_attempts
               (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at, http_status, response_body, response_time_ms, error, worker)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (delivery_id, dispatch_seq) DO NOTHING",
        )
        .bind(d.delivery_id)
        .bind(d.dispatch_seq)
        .bind(rec.attempt_number as i32)
        .bind(outcome)
        .bind(rec.started_at)
        .bind(rec.finished_at)
        .bind(http_status)
        .bind(&rec.response_body)
        .bind(elapsed_ms.min(i32::MAX as i64) as i32)
        .bind(&error)
        .bind(&rec.worker)
        .execute(&mut *tx)
        .await?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET
               status = $3, attempt_number = $4, next_retry_at = $5, delivered_at = COALESCE($6, delivered_at),
               http_status = $7, response_body = $8, response_time_ms = $9, last_error = $10,
               dispatch_seq = dispatch_seq + $11, updated_at = now()
             WHERE delivery_id = $1 AND dispatch_seq = $2 AND status IN ('PENDING', 'FAILED')",
        )
        .bind(d.delivery_id)
        .bind(d.dispatch_seq)
        .bind(rec.decision.status.as_str())
        .bind(rec.attempt_number as i32)
        .bind(rec.decision.next_retry_at)
        .bind(rec.decision.delivered_at)
        .bind(http_status)
        .bind(&rec.response_body)
        .bind(elapsed_ms.min(i32::MAX as i64) as i32)
        .bind(&error)
        .bind(i32::from(retry))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Re-triggered or cancelled while we were sending: the attempt is logged, the state is not ours to change.
            tx.commit().await?;
            return Ok(false);
        }
        if retry {
            let next = Job::WebhookDelivery(DeliverWebhook {
                delivery_id: d.delivery_id,
                dispatch_seq: d.dispatch_seq + 1,
            });
            queue::push(&mut tx, vec![(next, rec.next_run_in.unwrap_or_default())]).await?;
        }
        match rec.decision.status {
            DeliveryStatus::Delivered => {
                let data = json!({"deliveryId": d.delivery_id, "subscriptionId": d.subscription_id, "storeId": d.store_id, "eventType": d.event_type});
                let event = published_event("webhook.delivered", &d.store_id, data);
                outbox::insert(
                    &mut tx,
                    &self.publish_topic,
                    &d.delivery_id.to_string(),
                    &event,
                )
                .await?;
            }
            DeliveryStatus::DeadLettered => {
                let reason = error.unwrap_or_else(|| "all attempts failed".into());
                let data = json!({"deliveryId": d.delivery_id, "subscriptionId": d.subscription_id, "storeId": d.store_id, "eventType": d.event_type, "reason": reason});
                let event = published_event("webhook.dead_lettered", &d.store_id, data);
                outbox::insert(
                    &mut tx,
                    &self.publish_topic,
                    &d.delivery_id.to_string(),
                    &event,
                )
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel(
        &self,
        delivery_id: Uuid,
        dispatch_seq: i32,
        reason: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'CANCELLED', next_retry_at = NULL, last_error = $3, updated_at = now()
             WHERE delivery_id = $1 AND dispatch_seq = $2 AND status IN ('PENDING', 'FAILED')",
        )
        .bind(delivery_id)
        .bind(dispatch_seq)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn defer(
        &self,
        delivery_id: Uuid,
        dispatch_seq: i32,
        run_in: Duration,
        reason: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE webhook_deliveries SET dispatch_seq = dispatch_seq + 1, last_error = COALESCE($3, last_error), updated_at = now()
             WHERE delivery_id = $1 AND dispatch_seq = $2 AND status IN ('PENDING', 'FAILED')",
        )
        .bind(delivery_id)
        .bind(dispatch_seq)
        .bind(reason.map(|r| format!("deferred, no attempt counted: {r}")))
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 1 {
            let job = Job::WebhookDelivery(DeliverWebhook {
                delivery_id,
                dispatch_seq: dispatch_seq + 1,
            });
            queue::push(&mut tx, vec![(job, run_in)]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Stop the pending retries of a subscription (it was deactivated or deleted).
pub async fn cancel_waiting(
    conn: &mut PgConnection,
    subscription_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'CANCELLED', next_retry_at = NULL, last_error = $2, updated_at = now()
         WHERE subscription_id = $1 AND status IN ('PENDING', 'FAILED')",
    )
    .bind(subscription_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Which deliveries a re-trigger may restart.
#[derive(Debug, Clone, Copy)]
pub enum Restart {
    /// Only dead-lettered or cancelled ones (`POST /deliveries/{id}/retrigger`).
    DeadOrCancelled,
    /// Any delivery not already waiting for an attempt, delivered ones included (`POST /deliveries/{id}/resend`).
    AnyFinished,
}

/// Restart the schedule of deliveries: attempt counter to 0, a fresh job due now. History stays in the attempt log.
/// Returns the restarted ids. `filter` is SQL-free: either one delivery or a subscription's dead letters since a time.
pub async fn restart(
    pool: &PgPool,
    store_id: &str,
    which: Restart,
    delivery_id: Option<Uuid>,
    subscription_since: Option<(Uuid, DateTime<Utc>)>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let statuses: &[&str] = match which {
        Restart::DeadOrCancelled => &["DEAD_LETTERED", "CANCELLED"],
        Restart::AnyFinished => &["DEAD_LETTERED", "CANCELLED", "DELIVERED"],
    };
    let (subscription_id, since) = subscription_since.unzip();
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "UPDATE webhook_deliveries d SET status = 'PENDING', attempt_number = 0, next_retry_at = NULL,
                dispatch_seq = dispatch_seq + 1, updated_at = now()
         FROM webhook_subscriptions s
         WHERE s.subscription_id = d.subscription_id AND s.is_active AND s.deleted_at IS NULL
           AND d.store_id = $1 AND d.status = ANY($2)
           AND ($3::uuid IS NULL OR d.delivery_id = $3)
           AND ($4::uuid IS NULL OR (d.subscription_id = $4 AND d.status = 'DEAD_LETTERED' AND d.updated_at >= $5))
         RETURNING d.delivery_id, d.dispatch_seq",
    )
    .bind(store_id)
    .bind(statuses)
    .bind(delivery_id)
    .bind(subscription_id)
    .bind(since)
    .fetch_all(&mut *tx)
    .await?;
    let jobs = rows
        .iter()
        .map(|&(delivery_id, dispatch_seq)| {
            (
                Job::WebhookDelivery(DeliverWebhook {
                    delivery_id,
                    dispatch_seq,
                }),
                Duration::ZERO,
            )
        })
        .collect();
    queue::push(&mut tx, jobs)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Id.
    pub delivery_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Event type.
    pub event_type: String,
    /// Event id.
    pub event_id: Uuid,
    /// Body sent.
    pub event_payload: Value,
    /// Status.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// Next attempt.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Last HTTP status.
    pub http_status: Option<i32>,
    /// Last response body.
    pub response_body: Option<String>,
    /// Last response time.
    pub response_time_ms: Option<i32>,
    /// Last error.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// One attempt in the log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Delivery.
    pub delivery_id: Uuid,
    /// Position in its schedule.
    pub attempt_number: i32,
    /// DELIVERED or FAILED.
    pub outcome: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// HTTP status.
    pub http_status: Option<i32>,
    /// Response body (truncated).
    pub response_body: Option<String>,
    /// Response time.
    pub response_time_ms: i32,
    /// Error.
    pub error: Option<String>,
}

/// Filters of the delivery log (all optional).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// One subscription.
    pub subscription_id: Option<Uuid>,
    /// One status.
    pub status: Option<DeliveryStatus>,
    /// One event type.
    pub event_type: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: rows strictly older than this (created_at, delivery_id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

macro_rules! delivery_columns {
    () => {
        "delivery_id, subscription_id, store_id, event_type, event_id, event_payload, status, attempt_number,
         next_retry_at, delivered_at, http_status, response_body, response_time_ms, last_error, created_at, updated_at"
    };
}

/// A page of a store's delivery log, newest first.
pub async fn list(
    pool: &PgPool,
    store_id: &str,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let (before_at, before_id) = filter.before.unzip();
    sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries
         WHERE store_id = $1
           AND ($2::uuid IS NULL OR subscription_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR event_type = $4)
           AND ($5::timestamptz IS NULL OR created_at >= $5)
           AND ($6::timestamptz IS NULL OR created_at < $6)
           AND ($7::timestamptz IS NULL OR (created_at, delivery_id) < ($7, $8))
         ORDER BY created_at DESC, delivery_id DESC
         LIMIT $9"
    ))
    .bind(store_id)
    .bind(filter.subscription_id)
    .bind(filter.status.map(DeliveryStatus::as_str))
    .bind(&filter.event_type)
    .bind(filter.from)
    .bind(filter.to)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One delivery of a store.
pub async fn get(
    pool: &PgPool,
    store_id: &str,
    delivery_id: Uuid,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE store_id = $1 AND delivery_id = $2"
    ))
    .bind(store_id)
    .bind(delivery_id)
    .fetch_optional(pool)
    .await
}

/// Attempts of these deliveries, oldest first.
pub async fn attempts(
    pool: &PgPool,
    delivery_ids: &[Uuid],
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT delivery_id, attempt_number, outcome, started_at, finished_at, http_status, response_body, response_time_ms, error
         FROM webhook_delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, dispatch_seq",
    )
    .bind(delivery_ids)
    .fetch_all(pool)
    .await
}
