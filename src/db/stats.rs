//! The delivery counters: hourly rows (`webhook_stats_hourly`, written by the worker with the attempts) and, for days
//! before yesterday, daily rows (`webhook_stats_daily`, rolled up from the hourly ones by the retention pass). Read
//! per day of a window, for one subscription or a whole store, and per subscription for the overview. Never the log.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use workflows::StoreId;
use workflows::ids::SubscriptionId;
use workflows::stats::LATENCY_BUCKETS;

/// One day's counters.
#[derive(Debug, Clone, Default)]
pub struct DayCounts {
    /// Attempts that delivered on attempt 1.
    pub delivered_first: i64,
    /// Attempts that delivered on a later attempt.
    pub delivered_retry: i64,
    /// Attempts that dead-lettered their delivery.
    pub dead_lettered: i64,
    /// Failed attempts that scheduled a retry.
    pub retrying: i64,
    /// Response-time histogram (`workflows::stats::LATENCY_BOUNDS_MS`).
    pub latency: Vec<i64>,
    /// Failed attempts per error class.
    pub errors: BTreeMap<String, i64>,
}

impl DayCounts {
    /// Add another day's (or subscription's) counters.
    pub fn add(&mut self, other: &DayCounts) {
        self.delivered_first += other.delivered_first;
        self.delivered_retry += other.delivered_retry;
        self.dead_lettered += other.dead_lettered;
        self.retrying += other.retrying;
        self.latency.resize(LATENCY_BUCKETS, 0);
        for (sum, n) in self.latency.iter_mut().zip(&other.latency) {
            *sum += n;
        }
        for (class, n) in &other.errors {
            *self.errors.entry(class.clone()).or_default() += n;
        }
    }
}

/// Which counters: a store's, or one of its subscriptions'.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The store (always filtered by: a subscription of another store reads nothing).
    pub store_id: &'a StoreId,
    /// One subscription, or all of the store's.
    pub subscription: Option<SubscriptionId>,
}

/// Both tables' counters within the window as one relation `c(t, subscription_id, delivered_first, delivered_retry,
/// dead_lettered, retrying, latency, errors)`, `t` being the row's hour or day; `$1` store, `$2`–`$3` window, `$4`
/// the subscription when scoped to one.
fn counters(subscription: bool) -> String {
    // One statement per scope, not `($4 IS NULL OR subscription_id = $4)`: a prepared statement gets Postgres'
    // generic plan after five executions, and the generic plan of that condition reads the whole store's rows
    // through (store_id, hour) and filters them, instead of the subscription's through the primary key.
    let window = |t: &str| {
        if subscription {
            format!("subscription_id = $4 AND {t} >= $2 AND {t} < $3 AND store_id = $1")
        } else {
            format!("store_id = $1 AND {t} >= $2 AND {t} < $3")
        }
    };
    const COLUMNS: &str = "subscription_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors";
    format!(
        "(SELECT hour AS t, {COLUMNS} FROM webhook_stats_hourly WHERE {}
          UNION ALL SELECT day, {COLUMNS} FROM webhook_stats_daily WHERE {}) AS c",
        window("hour"),
        window("day")
    )
}

/// The rows of `sql` (reading [`counters`] as `{COUNTERS}`) within the window.
async fn in_window<T>(
    pool: &PgPool,
    sql: &str,
    scope: Scope<'_>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let sql = sql.replace("{COUNTERS}", &counters(scope.subscription.is_some()));
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(scope.store_id.as_str())
        .bind(from)
        .bind(to);
    match scope.subscription {
        Some(id) => query.bind(id.uuid()).fetch_all(pool).await,
        None => query.fetch_all(pool).await,
    }
}

/// `ARRAY[COALESCE(sum(latency[1]), 0), …]`: the latency histograms of a group summed bucket by bucket, in one pass
/// (no row per bucket).
fn latency_sums() -> String {
    let buckets: Vec<String> = (1..=LATENCY_BUCKETS)
        .map(|i| format!("COALESCE(sum(latency[{i}]), 0)"))
        .collect();
    format!("ARRAY[{}]::bigint[]", buckets.join(", "))
}

/// A day's outcome counters, latency histogram and its rows' error classes: (day, first, retry, dead, retrying,
/// histogram, error objects).
type DaySums = (
    DateTime<Utc>,
    i64,
    i64,
    i64,
    i64,
    Vec<i64>,
    Option<Vec<Value>>,
);

/// The counters of each UTC day in `[from, to)` that has any (`from` at midnight UTC: a daily row is in or out whole).
///
/// One statement over the window's rows (a row per subscription and closed day, ≤ 24 per subscription and day of
/// today and yesterday): the counters and the latency histogram summed, and the rows' error objects
/// (`{"http_503": 2}`) gathered per day and added up here. Unpacking them in SQL (`jsonb_each_text`, a row per class
/// and row) cost more than the rest of the statement.
pub async fn daily(
    pool: &PgPool,
    scope: Scope<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<BTreeMap<NaiveDate, DayCounts>> {
    static SUMS: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT date_trunc('day', t, 'UTC'), sum(delivered_first)::bigint, sum(delivered_retry)::bigint,
                    sum(dead_lettered)::bigint, sum(retrying)::bigint, {},
                    array_agg(errors) FILTER (WHERE errors <> '{{}}')
             FROM {{COUNTERS}} GROUP BY 1",
            latency_sums()
        )
    });
    let sums: Vec<DaySums> = in_window(pool, &SUMS, scope, (from, to)).await?;
    let mut days: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
    for (day, first, retry, dead, retrying, latency, errors) in sums {
        let d = days.entry(day.date_naive()).or_default();
        d.delivered_first = first;
        d.delivered_retry = retry;
        d.dead_lettered = dead;
        d.retrying = retrying;
        d.latency = latency;
        for (class, n) in errors
            .iter()
            .flatten()
            .filter_map(Value::as_object)
            .flatten()
        {
            *d.errors.entry(class.clone()).or_default() += n.as_i64().unwrap_or(0);
        }
    }
    Ok(days)
}

/// Per subscription of a store: attempts delivered and dead-lettered since `since_24h` and since `since_30d`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Recent {
    /// The subscription.
    pub subscription_id: Uuid,
    /// Delivered attempts in the last 24 h.
    pub delivered_24h: i64,
    /// Dead letters made in the last 24 h.
    pub dead_lettered_24h: i64,
    /// Attempts in the last 24 h.
    pub attempts_24h: i64,
    /// Delivered attempts in the last 30 days.
    pub delivered_30d: i64,
    /// Dead letters made in the last 30 days.
    pub dead_lettered_30d: i64,
    /// Attempts in the last 30 days.
    pub attempts_30d: i64,
}

/// Recent counters of every subscription of a store that has any: the last 24 hours (`since_24h`, within today's
/// and yesterday's hourly rows) and the window from `since_30d` (midnight UTC) to `to`.
pub async fn recent(
    pool: &PgPool,
    store_id: &StoreId,
    since_24h: DateTime<Utc>,
    (since_30d, to): (DateTime<Utc>, DateTime<Utc>),
) -> sqlx::Result<Vec<Recent>> {
    static RECENT: LazyLock<String> = LazyLock::new(|| {
        // `$4` is the 24-hour start (the store's window binds `$1`–`$3` only).
        format!(
            "SELECT subscription_id,
                COALESCE(sum(delivered_first + delivered_retry) FILTER (WHERE t >= $4), 0)::bigint AS delivered_24h,
                COALESCE(sum(dead_lettered) FILTER (WHERE t >= $4), 0)::bigint AS dead_lettered_24h,
                COALESCE(sum(delivered_first + delivered_retry + dead_lettered + retrying) FILTER (WHERE t >= $4), 0)::bigint
                  AS attempts_24h,
                sum(delivered_first + delivered_retry)::bigint AS delivered_30d,
                sum(dead_lettered)::bigint AS dead_lettered_30d,
                sum(delivered_first + delivered_retry + dead_lettered + retrying)::bigint AS attempts_30d
             FROM {} GROUP BY subscription_id",
            counters(false)
        )
    });
    sqlx::query_as(sqlx::AssertSqlSafe(RECENT.as_str()))
        .bind(store_id.as_str())
        .bind(since_30d)
        .bind(to)
        .bind(since_24h)
        .fetch_all(pool)
        .await
}

/// Move the hourly counters of hours before `before` (midnight UTC) into the daily rows, up to `batch` hourly rows
/// per statement (its own transaction; added to the daily rows, so a day may arrive over several batches), batch
/// after batch as retention removes rows (the statement answers a row per hourly row it moved). Returns the hourly
/// rows moved. Counting goes on meanwhile: the worker only adds to the current hour.
pub async fn roll_up(pool: &PgPool, before: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    static ROLL_UP: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH moved AS (
               DELETE FROM webhook_stats_hourly WHERE (subscription_id, hour) IN (
                 SELECT subscription_id, hour FROM webhook_stats_hourly WHERE hour < $1
                 ORDER BY subscription_id, hour LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING *),
             errors AS (
               SELECT subscription_id, day, jsonb_object_agg(class, n) AS errors FROM (
                 SELECT subscription_id, date_trunc('day', hour, 'UTC') AS day, e.class, sum(e.n::bigint) AS n
                 FROM moved, jsonb_each_text(moved.errors) AS e(class, n) GROUP BY 1, 2, 3) AS per_class
               GROUP BY 1, 2),
             days AS (
               SELECT subscription_id, date_trunc('day', hour, 'UTC') AS day, min(store_id) AS store_id,
                      sum(delivered_first)::bigint AS first, sum(delivered_retry)::bigint AS retry,
                      sum(dead_lettered)::bigint AS dead, sum(retrying)::bigint AS retrying, {} AS latency
               FROM moved GROUP BY 1, 2),
             written AS (
               INSERT INTO webhook_stats_daily AS s
               (subscription_id, day, store_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors)
             SELECT d.subscription_id, d.day, d.store_id, d.first, d.retry, d.dead, d.retrying, d.latency,
                    COALESCE(e.errors, '{{}}')
             FROM days d LEFT JOIN errors e USING (subscription_id, day)
             ORDER BY d.subscription_id, d.day
             ON CONFLICT (subscription_id, day) DO UPDATE SET {}
               RETURNING 1)
             SELECT 1 FROM moved",
            latency_sums(),
            jobs::webhook::ADD_COUNTERS
        )
    });
    jobs::batched::drain(pool, &ROLL_UP, before, batch).await
}

/// Current dead letters per subscription of a store.
///
/// Through the store's subscriptions (a delivery belongs to its subscription's store) so that the count is an
/// index-only scan of `webhook_deliveries_dead` per subscription: filtering the log on `store_id` fetched one heap
/// page per dead letter (50,000 pages for 50,000 dead letters, about a second).
pub async fn dead_letters(pool: &PgPool, store_id: &StoreId) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(
        "SELECT s.subscription_id, count(*) FROM webhook_subscriptions s
         JOIN webhook_deliveries d ON d.subscription_id = s.subscription_id AND d.status = 'DEAD_LETTERED'
         WHERE s.store_id = $1 GROUP BY s.subscription_id",
    )
    .bind(store_id.as_str())
    .fetch_all(pool)
    .await
}
