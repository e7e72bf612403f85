//! Reading the hourly delivery counters (`webhook_stats_hourly`, written by the worker with the attempts): per day
//! of a window, for one subscription or a whole store, and per subscription for the overview. Never the log.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
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

/// The rows of `sql` (reading `webhook_stats_hourly` with `{WINDOW}` in its `WHERE`) within the window.
async fn in_window<T>(
    pool: &PgPool,
    sql: &str,
    scope: Scope<'_>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    // One statement per scope, not `($4 IS NULL OR subscription_id = $4)`: a prepared statement gets Postgres'
    // generic plan after five executions, and the generic plan of that condition reads the whole store's rows
    // through (store_id, hour) and filters them, instead of the subscription's through the primary key.
    const STORE: &str = "store_id = $1 AND hour >= $2 AND hour < $3";
    const SUBSCRIPTION: &str =
        "subscription_id = $4 AND hour >= $2 AND hour < $3 AND store_id = $1";
    let window = if scope.subscription.is_some() {
        SUBSCRIPTION
    } else {
        STORE
    };
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.replace("{WINDOW}", window)))
        .bind(scope.store_id.as_str())
        .bind(from)
        .bind(to);
    match scope.subscription {
        Some(id) => query.bind(id.uuid()).fetch_all(pool).await,
        None => query.fetch_all(pool).await,
    }
}

/// A day's outcome counters and latency histogram: (day, first, retry, dead, retrying, histogram).
type DaySums = (DateTime<Utc>, i64, i64, i64, i64, Vec<i64>);

/// The counters of each UTC day in `[from, to)` that has any.
///
/// Two statements over the window's rows (≤ 24 per subscription and day): the counters with the latency histogram
/// summed bucket by bucket (`latency[i]`, one pass, no row per bucket), then the error classes.
pub async fn daily(
    pool: &PgPool,
    scope: Scope<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<BTreeMap<NaiveDate, DayCounts>> {
    static SUMS: LazyLock<String> = LazyLock::new(|| {
        let buckets: Vec<String> = (1..=LATENCY_BUCKETS)
            .map(|i| format!("COALESCE(sum(latency[{i}]), 0)"))
            .collect();
        format!(
            "SELECT date_trunc('day', hour, 'UTC'), sum(delivered_first)::bigint, sum(delivered_retry)::bigint,
                    sum(dead_lettered)::bigint, sum(retrying)::bigint, ARRAY[{}]::bigint[]
             FROM webhook_stats_hourly WHERE {{WINDOW}} GROUP BY 1",
            buckets.join(", ")
        )
    });
    let window = (from, to);
    let sums: Vec<DaySums> = in_window(pool, &SUMS, scope, window).await?;
    let errors: Vec<(DateTime<Utc>, String, i64)> = in_window(
        pool,
        "SELECT date_trunc('day', hour, 'UTC'), e.class, sum(e.n::bigint)::bigint
         FROM webhook_stats_hourly, jsonb_each_text(errors) AS e(class, n)
         WHERE {WINDOW} AND errors <> '{}' GROUP BY 1, 2",
        scope,
        window,
    )
    .await?;
    let mut days: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
    for (day, first, retry, dead, retrying, latency) in sums {
        let d = days.entry(day.date_naive()).or_default();
        d.delivered_first = first;
        d.delivered_retry = retry;
        d.dead_lettered = dead;
        d.retrying = retrying;
        d.latency = latency;
    }
    for (day, class, n) in errors {
        *days
            .entry(day.date_naive())
            .or_default()
            .errors
            .entry(class)
            .or_default() += n;
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

/// Recent counters of every subscription of a store that has any.
pub async fn recent(
    pool: &PgPool,
    store_id: &StoreId,
    since_24h: DateTime<Utc>,
    since_30d: DateTime<Utc>,
) -> sqlx::Result<Vec<Recent>> {
    sqlx::query_as(
        "SELECT subscription_id,
                COALESCE(sum(delivered_first + delivered_retry) FILTER (WHERE hour >= $2), 0)::bigint AS delivered_24h,
                COALESCE(sum(dead_lettered) FILTER (WHERE hour >= $2), 0)::bigint AS dead_lettered_24h,
                COALESCE(sum(delivered_first + delivered_retry + dead_lettered + retrying) FILTER (WHERE hour >= $2), 0)::bigint
                  AS attempts_24h,
                sum(delivered_first + delivered_retry)::bigint AS delivered_30d,
                sum(dead_lettered)::bigint AS dead_lettered_30d,
                sum(delivered_first + delivered_retry + dead_lettered + retrying)::bigint AS attempts_30d
         FROM webhook_stats_hourly WHERE store_id = $1 AND hour >= $3
         GROUP BY subscription_id",
    )
    .bind(store_id.as_str())
    .bind(since_24h)
    .bind(since_30d)
    .fetch_all(pool)
    .await
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
