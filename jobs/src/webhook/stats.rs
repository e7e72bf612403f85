//! The hourly delivery counters (`webhook_stats_hourly`), added to in the transaction that records the attempts:
//! one upsert per flush, one row per subscription and hour touched, in key order (two workers flushing the same
//! subscription's hour wait for each other instead of deadlocking).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;
use workflows::AttemptOutcome;
use workflows::stats::{AttemptResult, LATENCY_BUCKETS, error_class, latency_bucket};

use crate::webhook::WebhookRecord;

/// The error class of a record (`None` when it delivered).
pub fn class_of(r: &WebhookRecord) -> Option<String> {
    match &r.extras.outcome {
        AttemptOutcome::Delivered { .. } => None,
        AttemptOutcome::Failed { reason, .. } => Some(error_class(reason)),
    }
}

/// One subscription-hour's share of a flush.
struct Hour {
    store_id: String,
    results: [i64; 4],
    latency: [i64; LATENCY_BUCKETS],
    errors: BTreeMap<String, i64>,
}

fn result_index(r: AttemptResult) -> usize {
    match r {
        AttemptResult::DeliveredFirst => 0,
        AttemptResult::DeliveredRetry => 1,
        AttemptResult::DeadLettered => 2,
        AttemptResult::Retrying => 3,
    }
}

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// Add `records` to the hourly counters.
pub async fn count(conn: &mut PgConnection, records: &[&WebhookRecord]) -> sqlx::Result<()> {
    let mut hours: BTreeMap<(Uuid, DateTime<Utc>), Hour> = BTreeMap::new();
    for r in records {
        let key = (r.loaded.subscription_id.uuid(), hour_of(r.finished_at));
        let hour = hours.entry(key).or_insert_with(|| Hour {
            store_id: r.loaded.store_id.clone(),
            results: [0; 4],
            latency: [0; LATENCY_BUCKETS],
            errors: BTreeMap::new(),
        });
        hour.results[result_index(AttemptResult::of(r.decision.status, r.attempt_number))] += 1;
        hour.latency[latency_bucket(r.extras.outcome.elapsed_ms())] += 1;
        if let Some(class) = class_of(r) {
            *hour.errors.entry(class).or_default() += 1;
        }
    }
    if hours.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for ((subscription, at), hour) in hours {
        c.subscription.push(subscription);
        c.hour.push(at);
        c.store.push(hour.store_id);
        for (column, n) in c.results.iter_mut().zip(hour.results) {
            column.push(n);
        }
        c.latency.extend(hour.latency);
        let errors: Map<String, Value> = hour
            .errors
            .into_iter()
            .map(|(k, n)| (k, n.into()))
            .collect();
        c.errors.push(Value::Object(errors));
    }
    c.upsert(conn).await
}

/// The `SET` list of an upsert into a counters table aliased `s`: the row's counters plus `EXCLUDED`'s (the error
/// classes merged by name; an empty side, the usual case, is taken as is without unpacking either).
pub const ADD_COUNTERS: &str = "
    delivered_first = s.delivered_first + EXCLUDED.delivered_first,
    delivered_retry = s.delivered_retry + EXCLUDED.delivered_retry,
    dead_lettered = s.dead_lettered + EXCLUDED.dead_lettered,
    retrying = s.retrying + EXCLUDED.retrying,
    latency = ARRAY(SELECT a + b FROM unnest(s.latency, EXCLUDED.latency) AS h(a, b)),
    errors = CASE WHEN EXCLUDED.errors = '{}' THEN s.errors WHEN s.errors = '{}' THEN EXCLUDED.errors
             ELSE (SELECT jsonb_object_agg(k, n) FROM (
                     SELECT k, sum(v::bigint) AS n
                     FROM (SELECT * FROM jsonb_each_text(s.errors)
                           UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.errors)) AS e(k, v)
                     GROUP BY k) AS merged) END";

#[derive(Default)]
struct Columns {
    subscription: Vec<Uuid>,
    hour: Vec<DateTime<Utc>>,
    store: Vec<String>,
    results: [Vec<i64>; 4],
    /// Every row's histogram, concatenated (`LATENCY_BUCKETS` per row).
    latency: Vec<i64>,
    errors: Vec<Value>,
}

impl Columns {
    async fn upsert(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        let [first, retry, dead, retrying] = self.results;
        static UPSERT: LazyLock<String> = LazyLock::new(|| {
            "INSERT INTO webhook_stats_hourly AS s
               (subscription_id, hour, store_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors)
             SELECT i.sub, i.hour, i.store, i.first, i.retry, i.dead, i.retrying,
                    ($8::bigint[])[(i.n - 1) * $10 + 1 : i.n * $10], i.errors
             FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::bigint[], $9::jsonb[]) WITH ORDINALITY
                  AS i(sub, hour, store, first, retry, dead, retrying, errors, n)
             ORDER BY i.sub, i.hour
             ON CONFLICT (subscription_id, hour) DO UPDATE SET {ADD}"
                .replace("{ADD}", ADD_COUNTERS)
        });
        sqlx::query(sqlx::AssertSqlSafe(UPSERT.as_str()))
            .bind(&self.subscription)
            .bind(&self.hour)
            .bind(&self.store)
            .bind(&first)
            .bind(&retry)
            .bind(&dead)
            .bind(&retrying)
            .bind(&self.latency)
            .bind(&self.errors)
            .bind(LATENCY_BUCKETS as i32)
            .execute(conn)
            .await?;
        Ok(())
    }
}
