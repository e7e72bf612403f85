//! The hourly delivery counters (`webhook_stats_hourly`), added to by the statement that logs the attempts (one
//! statement, one round trip per flush): [`COUNT_LOGGED`] groups the attempts that statement inserted (a twin's
//! duplicate is not inserted, so not counted again) by subscription and hour, and upserts one row per group, in key
//! order (two workers flushing the same subscription's hour wait for each other instead of deadlocking). What each
//! attempt counts as (outcome, latency bucket, error class) is decided here, in Rust ([`Counted`]).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use workflows::AttemptOutcome;
use workflows::stats::{AttemptResult, LATENCY_BUCKETS, error_class, hour_of, latency_bucket};

use crate::webhook::WebhookRecord;

/// The error class of a record (`None` when it delivered).
pub fn class_of(r: &WebhookRecord) -> Option<String> {
    match &r.extras.outcome {
        AttemptOutcome::Delivered { .. } => None,
        AttemptOutcome::Failed { reason, .. } => Some(error_class(reason)),
    }
}

fn result_index(r: AttemptResult) -> i32 {
    match r {
        AttemptResult::DeliveredFirst => 0,
        AttemptResult::DeliveredRetry => 1,
        AttemptResult::DeadLettered => 2,
        AttemptResult::Retrying => 3,
    }
}

/// What each attempt of a flush counts as, a column per field, aligned with the log statement's rows.
#[derive(Debug, Default)]
pub struct Counted {
    /// Its subscription.
    pub subscription: Vec<Uuid>,
    /// Its hour (UTC).
    pub hour: Vec<DateTime<Utc>>,
    /// Its store.
    pub store: Vec<String>,
    /// Its outcome: 0 delivered first, 1 delivered after retries, 2 dead-lettered, 3 retry scheduled.
    pub result: Vec<i32>,
    /// Its response-time bucket (`workflows::stats::LATENCY_BOUNDS_MS`).
    pub bucket: Vec<i32>,
}

impl Counted {
    /// The columns of `records`.
    pub fn of(records: &[&WebhookRecord]) -> Self {
        let mut c = Self::default();
        for r in records {
            c.subscription.push(r.loaded.subscription_id.uuid());
            c.hour.push(hour_of(r.finished_at));
            c.store.push(r.loaded.store_id.clone());
            c.result.push(result_index(AttemptResult::of(
                r.decision.status,
                r.attempt_number,
            )));
            c.bucket
                .push(latency_bucket(r.extras.outcome.elapsed_ms()) as i32);
        }
        c
    }
}

/// The tail of the log statement, after its `logged` CTE (`INSERT … RETURNING delivery_id, dispatch_seq`): the
/// attempts it inserted (`$1` delivery ids, `$2` dispatch seqs, `$12` error classes, then [`Counted`]'s columns as
/// `$13`–`$17`) summed per subscription and hour into `webhook_stats_hourly`.
pub static COUNT_LOGGED: LazyLock<String> = LazyLock::new(|| {
    let buckets: Vec<String> = (0..LATENCY_BUCKETS)
        .map(|i| format!("count(*) FILTER (WHERE bucket = {i})"))
        .collect();
    format!(
        ",
        counted AS (
          SELECT c.* FROM unnest($1::uuid[], $2::int[], $12::text[], $13::uuid[], $14::timestamptz[], $15::text[],
                                 $16::int[], $17::int[])
                 AS c(delivery_id, dispatch_seq, class, sub, hour, store, result, bucket)
          JOIN logged USING (delivery_id, dispatch_seq)),
        errors AS (
          SELECT sub, hour, jsonb_object_agg(class, n) AS errors
          FROM (SELECT sub, hour, class, count(*) AS n FROM counted WHERE class IS NOT NULL GROUP BY 1, 2, 3) AS e
          GROUP BY 1, 2),
        hours AS (
          SELECT sub, hour, min(store) AS store, count(*) FILTER (WHERE result = 0) AS first,
                 count(*) FILTER (WHERE result = 1) AS retry, count(*) FILTER (WHERE result = 2) AS dead,
                 count(*) FILTER (WHERE result = 3) AS retrying, ARRAY[{}]::bigint[] AS latency
          FROM counted GROUP BY 1, 2)
        INSERT INTO webhook_stats_hourly AS s
          (subscription_id, hour, store_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors)
        SELECT h.sub, h.hour, h.store, h.first, h.retry, h.dead, h.retrying, h.latency, COALESCE(e.errors, '{{}}')
        FROM hours h LEFT JOIN errors e USING (sub, hour)
        ORDER BY h.sub, h.hour
        ON CONFLICT (subscription_id, hour) DO UPDATE SET {ADD_COUNTERS}",
        buckets.join(", ")
    )
});

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
