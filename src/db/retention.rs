//! Retention: what the service keeps, and for how long. Removal is small batched deletes (at most `batch` rows per
//! statement, oldest first, `SKIP LOCKED`), never a long lock: delivery never waits on it, and a pass during a
//! burst only adds short statements. One worker at a time runs a pass (advisory lock); the others skip it.
//!
//! - Webhook deliveries and connector jobs in a final state (`DELIVERED`/`SUCCEEDED`, `CANCELLED`,
//!   `DEAD_LETTERED`), created and last changed before the delivery-log horizon, with their attempt rows and
//!   OUTBOUND sync-log rows; INBOUND sync-log rows by start time. Waiting rows (`PENDING`, `FAILED`) are never
//!   removed. A dead letter can be re-triggered until it is removed: re-triggering one resets its age.
//! - Ingested events (the dedupe window of event ids) after their own horizon; an event that created deliveries or
//!   connector jobs carries their body, and stays as long as they do (at least the delivery-log horizon).
//! - Outbox rows are not removed here: the relay deletes each once it is published (`crate::publisher`); without
//!   Kafka they stay.
//! - Quarantined messages after the delivery-log horizon.
//! - Delivery statistics after their own horizon (the longest window they serve), and the hourly counters of days
//!   before yesterday rolled up into daily rows (`db::stats::roll_up`); admin sessions once expired or signed out.
//!
//! Finished apalis jobs are swept by the workers (`worker.job_retention_secs`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jobs::batched::drain;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Delivery log, attempts, connector jobs and sync log, quarantined messages.
    pub log: Duration,
    /// Ingested events (their ids are the dedupe window).
    pub ingested_events: Duration,
    /// Hourly delivery statistics.
    pub stats: Duration,
    /// Rows removed per statement.
    pub batch: i64,
}

/// Rows removed by one pass, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Webhook deliveries (with their attempts).
    pub deliveries: u64,
    /// Connector jobs (with their OUTBOUND sync-log rows), and INBOUND sync-log rows.
    pub connector_rows: u64,
    /// Ingested events.
    pub ingested_events: u64,
    /// Quarantined messages.
    pub quarantined: u64,
    /// Statistics rows (hourly and daily), and ended admin sessions.
    pub stats_and_sessions: u64,
    /// Hourly statistics rows moved into daily rows.
    pub stats_hours_rolled_up: u64,
}

/// A kind of outbound row and its log: rows in a final state, created and last changed before `$1`, up to `$2`
/// of them, go with their log rows.
struct Outbound {
    table: &'static str,
    id: &'static str,
    finished: &'static str,
    log: &'static str,
}

/// Webhook deliveries (delivered, cancelled, dead-lettered) with their attempts.
const DELIVERIES: Outbound = Outbound {
    table: "webhook_deliveries",
    id: "delivery_id",
    finished: "'DELIVERED', 'CANCELLED', 'DEAD_LETTERED'",
    log: "webhook_delivery_attempts",
};

/// Connector jobs (succeeded, cancelled, dead-lettered) with their OUTBOUND sync-log rows.
const CONNECTOR_JOBS: Outbound = Outbound {
    table: "connector_jobs",
    id: "job_id",
    finished: "'SUCCEEDED', 'CANCELLED', 'DEAD_LETTERED'",
    log: "connector_sync_log",
};

impl Outbound {
    /// The statement removing one batch (built from the constants above, never from input).
    fn statement(&self) -> String {
        let Self {
            table,
            id,
            finished,
            log,
        } = self;
        format!(
            "WITH doomed AS (
                 SELECT {id} FROM {table}
                 WHERE created_at < $1 AND updated_at < $1 AND status IN ({finished})
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), logged AS (
                 DELETE FROM {log} l USING doomed d WHERE l.{id} = d.{id}
             )
             DELETE FROM {table} t USING doomed d WHERE t.{id} = d.{id}"
        )
    }
}

/// INBOUND sync-log rows (polls) started before `$1`.
const POLL_RUNS: &str = "DELETE FROM connector_sync_log WHERE run_id IN (
        SELECT run_id FROM connector_sync_log WHERE started_at < $1 AND job_id IS NULL
        ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Ingested events without a body (they created nothing: their ids are only the dedupe window) received before `$1`.
const INGESTED: &str = "DELETE FROM ingested_events WHERE event_id IN (
        SELECT event_id FROM ingested_events WHERE received_at < $1 AND payload IS NULL
        ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Ingested events with a body, received before `$1` (the delivery-log horizon), once no delivery or connector job
/// refers to them. A delivery refers only to the event its own fan-out statement inserted, so a delete can never
/// race a new delivery of an event it judged unreferenced.
const INGESTED_BODIES: &str = "DELETE FROM ingested_events WHERE event_id IN (
        SELECT e.event_id FROM ingested_events e
        WHERE e.received_at < $1 AND e.payload IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.event_id)
          AND NOT EXISTS (SELECT 1 FROM connector_jobs j WHERE j.event_id = e.event_id)
        ORDER BY e.received_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Quarantined messages received before `$1`.
const QUARANTINED: &str = "DELETE FROM quarantined_messages WHERE quarantine_id IN (
        SELECT quarantine_id FROM quarantined_messages WHERE received_at < $1
        ORDER BY quarantine_id LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Hourly statistics of hours before `$1`.
const STATS_HOURS: &str = "DELETE FROM webhook_stats_hourly WHERE (subscription_id, hour) IN (
        SELECT subscription_id, hour FROM webhook_stats_hourly WHERE hour < $1
        LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Daily statistics of days before `$1`.
const STATS_DAYS: &str = "DELETE FROM webhook_stats_daily WHERE (subscription_id, day) IN (
        SELECT subscription_id, day FROM webhook_stats_daily WHERE day < $1
        LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Admin sessions that ended (expired, or signed out) before `$1`.
const SESSIONS: &str = "DELETE FROM admin_sessions WHERE session_hash IN (
        SELECT session_hash FROM admin_sessions WHERE expires_at < $1 OR revoked_at < $1
        LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// One pass: every table down to its horizon as of `now`, batch by batch. `Ok(None)` when another process holds
/// the pass (it runs one at a time).
pub async fn pass(
    pool: &PgPool,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Option<Removed>, sqlx::Error> {
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtext('integration-service:retention'))",
    )
    .fetch_one(&mut *lock)
    .await?;
    if !locked {
        return Ok(None);
    }
    let removed = remove_all(pool, retention, now).await;
    // Released on this connection whatever happened (a lost connection releases it too).
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('integration-service:retention'))")
        .execute(&mut *lock)
        .await;
    removed.map(Some)
}

async fn remove_all(
    pool: &PgPool,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Removed, sqlx::Error> {
    let horizon = |keep: Duration| now - chrono::Duration::from_std(keep).unwrap_or_default();
    let (log, events) = (horizon(retention.log), horizon(retention.ingested_events));
    let batch = retention.batch.max(1);
    let stats = horizon(retention.stats);
    // Hours of days before yesterday: today's and yesterday's stay hourly, for the last 24 hours.
    let today = workflows::stats::day_of(now);
    Ok(Removed {
        deliveries: drain(pool, &DELIVERIES.statement(), log, batch).await?,
        connector_rows: drain(pool, &CONNECTOR_JOBS.statement(), log, batch).await?
            + drain(pool, POLL_RUNS, log, batch).await?,
        // After the deliveries and connector jobs above, so the bodies they referred to go in the same pass.
        ingested_events: drain(pool, INGESTED, events, batch).await?
            + drain(pool, INGESTED_BODIES, log.min(events), batch).await?,
        quarantined: drain(pool, QUARANTINED, log, batch).await?,
        stats_and_sessions: drain(pool, STATS_HOURS, stats, batch).await?
            + drain(pool, STATS_DAYS, stats, batch).await?
            + drain(pool, SESSIONS, now, batch).await?,
        stats_hours_rolled_up: crate::db::stats::roll_up(pool, today - TimeDelta::days(1), batch)
            .await?,
    })
}

/// Run a pass every `every` until `shutdown` (a failed pass is logged and tried again next time).
pub async fn run(pool: PgPool, retention: Retention, every: Duration, shutdown: CancellationToken) {
    crate::supervisor::every(every, shutdown, || async {
        match pass(&pool, &retention, Utc::now()).await {
            Ok(Some(removed)) if removed != Removed::default() => {
                tracing::info!(?removed, "retention pass removed old rows");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again next time"),
        }
    })
    .await;
}
