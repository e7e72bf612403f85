//! Webhook deliveries and their attempt log. Their attempts are written, re-triggered and cancelled by the shared
//! outbound writer (`jobs::queue::attempts`, which the worker also loads
//! them with); this module reads them back.

use chrono::{DateTime, Utc};
use jobs::queue::attempts::{self, Retriggered};
use jobs::webhook::{WebhookDeps, order};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use workflows::DeliveryStatus;
pub use workflows::attempt::Retrigger as Restart;
use workflows::ids::{DeliveryId, EventId, SubscriptionId};

/// Stop the pending retries of a subscription (it was deactivated or deleted).
pub async fn cancel_waiting(
    conn: &mut PgConnection,
    subscription_id: SubscriptionId,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let owner = subscription_id.uuid();
    let cancelled = attempts::cancel_waiting::<WebhookDeps>(conn, owner, reason).await?;
    // Its ordered lines go too (nothing waits in them any more).
    release_ordered(conn, subscription_id).await?;
    Ok(cancelled)
}

/// A subscription's deliveries stop waiting in ordered lines (it turned unordered, or they were cancelled): those
/// that waited get their jobs now.
pub async fn release_ordered(
    conn: &mut PgConnection,
    subscription_id: SubscriptionId,
) -> Result<(), sqlx::Error> {
    let jobs = order::release(conn, subscription_id).await?;
    jobs::queue::push(conn, jobs)
        .await
        .map_err(jobs::queue::as_sqlx)
}

/// Restart the schedule of deliveries (the shared re-trigger path): attempt counter to 0, a fresh job due now.
/// History stays in the attempt log. Either one delivery, or a subscription's dead letters since a time.
/// Returns the restarted ids.
pub async fn restart(
    pool: &PgPool,
    store_id: &str,
    which: Restart,
    delivery_id: Option<DeliveryId>,
    subscription_since: Option<(SubscriptionId, DateTime<Utc>)>,
) -> Result<Vec<DeliveryId>, sqlx::Error> {
    let (subscription_id, since) = subscription_since.unzip();
    let scope = Retriggered {
        store_id,
        which,
        owner: subscription_id.map(SubscriptionId::uuid),
        id: delivery_id.map(DeliveryId::uuid),
        dead_since: since,
    };
    let rows = attempts::retrigger::<WebhookDeps>(pool, &scope).await?;
    Ok(rows.into_iter().map(|(id, _)| DeliveryId(id)).collect())
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// The subscription it goes to.
    pub subscription_id: SubscriptionId,
    /// The store the event came from.
    pub store_id: String,
    /// Type of the event delivered.
    pub event_type: String,
    /// The event delivered.
    pub event_id: EventId,
    /// The exact body sent to the receiver (the event's, stored once with it; null should it be missing).
    pub event_payload: Option<Value>,
    /// PENDING, FAILED, DELIVERED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule (0 after a re-trigger).
    pub attempt_number: i32,
    /// When the next attempt is due (set while FAILED).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When a receiver answered 2xx.
    pub delivered_at: Option<DateTime<Utc>>,
    /// HTTP status of the last answer.
    pub http_status: Option<i32>,
    /// Body of the last answer, truncated.
    pub response_body: Option<String>,
    /// Response time of the last attempt, in milliseconds.
    pub response_time_ms: Option<i32>,
    /// The last failure (or deferral).
    pub last_error: Option<String>,
    /// When the delivery was created (its event was ingested).
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// One attempt in the log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// The delivery attempted.
    pub delivery_id: DeliveryId,
    /// Position in its schedule.
    pub attempt_number: i32,
    /// DELIVERED or FAILED.
    pub outcome: String,
    /// When the POST was sent.
    pub started_at: DateTime<Utc>,
    /// When the answer (or the failure) came.
    pub finished_at: DateTime<Utc>,
    /// HTTP status.
    pub http_status: Option<i32>,
    /// Response body (truncated).
    pub response_body: Option<String>,
    /// Response time.
    pub response_time_ms: i32,
    /// Why the attempt failed without an HTTP answer (connect, timeout, refused target); `None` otherwise.
    pub error: Option<String>,
    /// The worker that made it.
    pub worker: String,
    /// The error class the statistics count it under (`None` when delivered, or recorded before classes).
    pub error_class: Option<String>,
}

/// Filters of the delivery log (all optional).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// One subscription.
    pub subscription_id: Option<SubscriptionId>,
    /// One status.
    pub status: Option<DeliveryStatus>,
    /// One event type.
    pub event_type: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: rows strictly older than this (created_at, delivery_id).
    pub before: Option<(DateTime<Utc>, DeliveryId)>,
}

macro_rules! delivery_columns {
    () => {
        "delivery_id, subscription_id, store_id, event_type, event_id, status, attempt_number, next_retry_at,
         delivered_at, http_status, response_body, response_time_ms, last_error, created_at, updated_at,
         (SELECT e.payload FROM ingested_events e WHERE e.event_id = webhook_deliveries.event_id) AS event_payload"
    };
}

/// A page of a store's delivery log, newest first. The statement names only the filters given, so each combination
/// is its own prepared statement with a plan fit for it (a catch-all `($n IS NULL OR …)` gets Postgres' generic plan
/// after five executions, which walks the whole store's log for a filter that matches little or nothing). Indexes:
/// `(store_id, created_at, delivery_id)`, `(subscription_id, …)` and `(store_id, event_type, …)`.
pub async fn list(
    conn: impl sqlx::PgExecutor<'_>,
    store_id: &str,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::new(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE store_id = "
    ));
    q.push_bind(store_id);
    if let Some(id) = filter.subscription_id {
        q.push(" AND subscription_id = ").push_bind(id);
    }
    if let Some(status) = filter.status {
        // A literal, not a bind: one of five constants (never input), and a known value lets the planner use the
        // partial index of the statuses other than DELIVERED (a bind would get a generic plan that cannot).
        q.push(" AND status = '").push(status.as_str()).push("'");
    }
    if let Some(event_type) = &filter.event_type {
        q.push(" AND event_type = ").push_bind(event_type.clone());
    }
    if let Some(from) = filter.from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(" AND created_at < ").push_bind(to);
    }
    if let Some((at, id)) = filter.before {
        q.push(" AND (created_at, delivery_id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, delivery_id DESC LIMIT ")
        .push_bind(limit);
    q.build_query_as().fetch_all(conn).await
}

/// One delivery of a store.
pub async fn get(
    conn: impl sqlx::PgExecutor<'_>,
    store_id: &str,
    delivery_id: DeliveryId,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE store_id = $1 AND delivery_id = $2"
    ))
    .bind(store_id)
    .bind(delivery_id)
    .fetch_optional(conn)
    .await
}

/// Attempts of these deliveries, oldest first.
pub async fn attempts(
    conn: impl sqlx::PgExecutor<'_>,
    delivery_ids: &[DeliveryId],
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT delivery_id, attempt_number, outcome, started_at, finished_at, http_status, response_body, response_time_ms, error, worker, error_class
         FROM webhook_delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, dispatch_seq",
    )
    .bind(delivery_ids)
    .fetch_all(conn)
    .await
}

/// A read-only transaction that sees one snapshot (REPEATABLE READ): a log page's rows and their attempts read in
/// it agree, even while workers record attempts (a row still `PENDING` beside its `DELIVERED` attempt otherwise).
pub async fn snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
}

/// Dead letters of a subscription dead-lettered (or last changed) since `since`: what
/// `POST /subscriptions/{id}/dead-letters/retrigger` with that `since` would re-trigger.
pub async fn count_dead_since(
    pool: &PgPool,
    subscription_id: SubscriptionId,
    since: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries
         WHERE subscription_id = $1 AND status = 'DEAD_LETTERED' AND updated_at >= $2",
    )
    .bind(subscription_id)
    .bind(since)
    .fetch_one(pool)
    .await
}
