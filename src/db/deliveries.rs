//! Webhook deliveries and their attempt log.

use std::time::Duration;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jobs::Job;
use jobs::ports::DeliveryToSend;
use jobs::webhook::DeliverWebhook;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::DeliveryStatus;

use super::queue;

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

/// Load the deliveries a batch of jobs refers to, with their subscriptions, in one query.
pub async fn load_for_send(
    pool: &PgPool,
    ids: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, DeliveryToSend>> {
    let rows: Vec<SendRow> = sqlx::query_as(
        "SELECT d.delivery_id, d.subscription_id, d.store_id, d.event_type, d.event_payload, d.status,
                d.attempt_number, d.next_retry_at, d.dispatch_seq, s.target_url,
                (s.is_active AND s.deleted_at IS NULL) AS subscription_active
         FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
         WHERE d.delivery_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let status = DeliveryStatus::parse(&r.status).ok_or_else(|| {
                anyhow::anyhow!("unknown delivery status {:?} in the database", r.status)
            })?;
            Ok((
                r.delivery_id,
                DeliveryToSend {
                    delivery_id: r.delivery_id,
                    subscription_id: r.subscription_id,
                    store_id: r.store_id,
                    event_type: r.event_type,
                    payload: r.event_payload,
                    status,
                    attempt_number: r.attempt_number.max(0) as u32,
                    next_retry_at: r.next_retry_at,
                    dispatch_seq: r.dispatch_seq,
                    target_url: r.target_url,
                    subscription_active: r.subscription_active,
                },
            ))
        })
        .collect()
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
    queue::push(&mut tx, jobs).await.map_err(queue::as_sqlx)?;
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
