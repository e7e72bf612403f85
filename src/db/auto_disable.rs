//! Auto-disable of dead endpoints: a subscription whose every attempt has failed for `Policy::after`, with at least
//! `Policy::min_dead_letters` dead letters in that time, is deactivated with a reason, its waiting retries are
//! cancelled (as when an admin deactivates it), and `webhook.subscription_disabled` is published, all in one
//! transaction.
//!
//! Decided from the delivery counters (`webhook_stats_hourly` and the daily roll-up), not the log: nothing is added
//! to the delivery path. Their resolution is an hour (a day before yesterday), and the check errs late: failing
//! starts after the last hour (day) with a delivered attempt, and must have lasted `after` past the end of the
//! first hour (day) with a failure; dead letters are counted in the hours (days) after the last delivered one.
//! Failures before `failures_counted_from` (set when a subscription is activated) do not count.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jobs::clock::Clock;
use jobs::queue::effects::{Topics, publish, published_event};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use workflows::ids::SubscriptionId;

use super::deliveries::cancel_waiting;

/// When a failing subscription is disabled.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long every attempt must have failed.
    pub after: TimeDelta,
    /// Dead letters needed within that time.
    pub min_dead_letters: i64,
}

/// A subscription the check disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its store.
    pub store_id: String,
    /// Since when every attempt had failed.
    pub failing_since: DateTime<Utc>,
    /// Its dead letters in that time.
    pub dead_letters: i64,
    /// The reason recorded and published.
    pub reason: String,
}

/// Subscriptions to disable as of `$1`: `$2` the window in seconds, `$3` the dead letters needed.
const DUE: &str = "
WITH candidates AS (
  SELECT s.subscription_id, s.failures_counted_from AS counted_from
  FROM webhook_subscriptions s
  WHERE s.is_active AND s.deleted_at IS NULL AND s.subscription_id IN (
    SELECT subscription_id FROM webhook_stats_hourly WHERE dead_lettered > 0
    UNION SELECT subscription_id FROM webhook_stats_daily WHERE dead_lettered > 0)),
counters AS (
  SELECT c.subscription_id, h.hour AS t, interval '1 hour' AS len, h.delivered_first + h.delivered_retry AS ok,
         h.dead_lettered + h.retrying AS failed, h.dead_lettered AS dead
  FROM candidates c JOIN webhook_stats_hourly h USING (subscription_id)
  WHERE h.hour + interval '1 hour' > c.counted_from
  UNION ALL
  SELECT c.subscription_id, d.day, interval '1 day', d.delivered_first + d.delivered_retry,
         d.dead_lettered + d.retrying, d.dead_lettered
  FROM candidates c JOIN webhook_stats_daily d USING (subscription_id)
  WHERE d.day + interval '1 day' > c.counted_from),
last_ok AS (
  SELECT subscription_id, max(t) FILTER (WHERE ok > 0) AS t FROM counters GROUP BY 1),
failing AS (
  SELECT k.subscription_id, min(k.t) AS since, min(k.t + k.len) AS first_end, sum(k.dead)::bigint AS dead
  FROM counters k JOIN last_ok l USING (subscription_id)
  WHERE k.failed > 0 AND (l.t IS NULL OR k.t > l.t)
  GROUP BY 1)
SELECT f.subscription_id, s.store_id, greatest(f.since, s.failures_counted_from) AS since, f.dead
FROM failing f JOIN webhook_subscriptions s USING (subscription_id)
WHERE greatest(f.first_end, s.failures_counted_from) <= $1 - make_interval(secs => $2) AND f.dead >= $3
ORDER BY f.subscription_id";

/// Disable every subscription due under `policy` as of `now`, publishing an event for each through the outbox.
pub async fn check(
    pool: &PgPool,
    policy: Policy,
    now: DateTime<Utc>,
    topics: &Topics,
) -> anyhow::Result<Vec<Disabled>> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, String, DateTime<Utc>, i64)> = sqlx::query_as(DUE)
        .bind(now)
        .bind(policy.after.as_seconds_f64())
        .bind(policy.min_dead_letters)
        .fetch_all(&mut *tx)
        .await?;
    let mut disabled = Vec::new();
    let mut events = Vec::new();
    for (id, store_id, failing_since, dead_letters) in due {
        let reason = format!(
            "every attempt failed since {} ({dead_letters} dead letters)",
            failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        // Still active (another worker's check may have disabled it since this one read it).
        let changed = sqlx::query(
            "UPDATE webhook_subscriptions SET is_active = false, disabled_at = $2, disabled_reason = $3,
                    failing_since = $4, updated_at = now()
             WHERE subscription_id = $1 AND is_active AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(&reason)
        .bind(failing_since)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            continue;
        }
        let id = SubscriptionId::from(id);
        cancel_waiting(&mut tx, id, &format!("subscription disabled: {reason}")).await?;
        let data = json!({
            "subscriptionId": id, "storeId": store_id, "reason": reason,
            "failingSince": failing_since, "deadLetters": dead_letters, "disabledAt": now,
        });
        events.push((
            id.to_string(),
            published_event("webhook.subscription_disabled", &store_id, data),
        ));
        disabled.push(Disabled {
            subscription_id: id,
            store_id,
            failing_since,
            dead_letters,
            reason,
        });
    }
    publish(&mut tx, events, topics).await?;
    tx.commit().await?;
    Ok(disabled)
}

/// Check every `every` until `shutdown` (a failed check is logged and tried again next time).
pub async fn run(
    pool: PgPool,
    policy: Policy,
    (clock, topics): (Arc<dyn Clock>, Topics),
    every: Duration,
    shutdown: CancellationToken,
) {
    crate::supervisor::every(every, shutdown, || async {
        match check(&pool, policy, clock.now(), &topics).await {
            Ok(disabled) => {
                for d in disabled {
                    tracing::warn!(subscription = %d.subscription_id, store = %d.store_id, reason = %d.reason,
                        "subscription disabled: every attempt failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "auto-disable check failed; trying again next time"),
        }
    })
    .await;
}
