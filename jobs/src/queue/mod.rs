//! The apalis-postgres queue: enqueue inside our transactions, claim, acknowledge, heartbeat, leases.
//!
//! We use apalis-postgres' storage and schema, and its own queries where they fit (`keep_alive`; the
//! `apalis.workers` row is inserted here because `register_worker` takes a crate-private type). Five statements
//! are ours, each writing apalis' own columns and statuses as its queries do: the insert ([`push`], which writes a
//! job as `push_tasks` does, or already claimed when a worker of the process takes it), the fair claim ([`claim`], by lane,
//! where apalis' `get_jobs` takes the oldest due jobs whoever they belong to), the acknowledgement ([`ack`], keyed
//! by job id), renewing the leases of held jobs (`lock_at`), and re-queuing jobs whose lease expired, as its
//! `reenqueue_orphaned` does. Unlike `reenqueue_orphaned`, the rescue does not care whether the job's worker still
//! heartbeats: a live worker can hold a claim it forgot (its reply was lost when a connection died after the
//! commit). Every job carries its lane (`metadata -> 'lane'`), written when it is pushed; a job due much later carries
//! it parked until shortly before it is due ([`parked`]).

pub mod announce;
pub mod attempts;
pub mod claim;
pub mod effects;
pub mod load;
pub mod parked;
pub mod polls;
pub mod push;
pub mod vacuum;

pub use push::{Taker, push};

use std::time::{Duration, SystemTime};

use crate::job::QUEUE;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config as ApalisConfig, queries};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// How often apalis re-fetches a job whose handler hit an infrastructure error before giving up on it.
pub(crate) const MAX_INFRA_RETRIES: usize = 25;

/// A transaction holding the advisory lock of the periodic task `task` (`integration-service:<task>`) until it ends,
/// so one process at a time runs it; `None` when another process holds it (the caller skips this round).
pub async fn begin_alone(
    pool: &PgPool,
    task: &str,
) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('integration-service:' || $1))",
    )
    .bind(task)
    .fetch_one(&mut *tx)
    .await?;
    Ok(locked.then_some(tx))
}

/// A queue error inside a repository function that returns `sqlx::Error` (apalis wraps sqlx underneath).
/// The database's own error is passed through unchanged, so the service's `db::errors::fault` still sees its SQLSTATE.
pub fn as_sqlx(e: apalis_postgres::Error) -> sqlx::Error {
    match e {
        apalis_postgres::Error::Database(e) => e,
        other => sqlx::Error::Protocol(format!("queue: {other}")),
    }
}

/// apalis' config for our queue. The heartbeat only keeps `apalis.workers` current (jobs' `lock_by` refers to it);
/// recovery of abandoned jobs is the lease rescue, not apalis' missed-heartbeat rule.
pub fn apalis_config(batch_size: usize, heartbeat: Duration) -> ApalisConfig {
    ApalisConfig::default()
        .queue(QUEUE)
        .batch_size(batch_size)
        .heartbeat_interval(heartbeat)
}

/// Register the worker in `apalis.workers` (jobs it locks refer to that row).
pub async fn register(pool: &PgPool, worker: &WorkerContext) -> Result<(), apalis_postgres::Error> {
    let mut tx = pool.begin().await?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ($1, $2, 'PgStorage', '', to_timestamp($3))
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(worker.name())
    .bind(QUEUE)
    .bind(now as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Heartbeat: keep our `apalis.workers` row current (for operators and apalis' tools), re-registering if it vanished.
pub async fn heartbeat(
    pool: &PgPool,
    worker: &WorkerContext,
) -> Result<(), apalis_postgres::Error> {
    let mut conn = pool.acquire().await?;
    if queries::keep_alive(&mut *conn, QUEUE, worker)
        .await
        .is_err()
    {
        // Our row vanished (e.g. the database was restored): register again.
        drop(conn);
        register(pool, worker).await?;
    }
    Ok(())
}

/// Renew the leases of the jobs `worker` holds, in one statement whatever their number. Jobs re-queued meanwhile
/// (lease expired) or claimed by another worker are left alone, and so are jobs being acknowledged right now
/// (`SKIP LOCKED`: renewing them is moot, and waiting for their flush would only add lock waits to both).
/// Returns how many leases were renewed.
pub async fn renew_leases(pool: &PgPool, worker: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE apalis.jobs SET lock_at = now()
         WHERE id IN (
             SELECT id FROM apalis.jobs
             WHERE id = ANY($1) AND lock_by = $2 AND status IN ('Queued', 'Running')
             FOR UPDATE SKIP LOCKED)",
    )
    .bind(ids)
    .bind(worker)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Re-queue claimed jobs whose lease (`lock_at`) is older than `lease`, whichever worker holds them and whether or
/// not it still heartbeats. One worker at a time does it (advisory lock; the others skip this round); jobs being
/// acknowledged right now are skipped (`SKIP LOCKED`) and found at the next round if still expired. The index
/// `apalis_jobs_lease` keeps it to the claimed jobs. Returns how many were re-queued.
pub async fn rescue_expired(pool: &PgPool, lease: Duration) -> Result<u64, sqlx::Error> {
    let Some(mut tx) = begin_alone(pool, "rescue").await? else {
        return Ok(0);
    };
    let rescued = sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
             attempts = attempts + 1, last_result = '{\"Err\": \"Re-enqueued: its lease expired.\"}'
         WHERE id IN (
             SELECT id FROM apalis.jobs
             WHERE status IN ('Queued', 'Running') AND lock_at < now() - make_interval(secs => $2)
               AND job_type = $1
             FOR UPDATE SKIP LOCKED)",
    )
    .bind(QUEUE)
    .bind(lease.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(rescued)
}

/// How a claimed job ended, for apalis.
#[derive(Debug, Clone)]
pub struct Ack {
    /// apalis' task id.
    pub task_id: TaskId,
    /// Attempts apalis has counted so far, including this one.
    pub attempt: usize,
    /// `Ok` → Done; `Err` → Failed (re-fetched while attempts remain: only our infrastructure errors get here).
    pub result: Result<(), String>,
}

/// Report finished jobs to apalis in one statement, in the caller's transaction, for the jobs this worker holds.
/// A job that failed (only our infrastructure errors get here) is written as apalis' `handle_results` writes it
/// (`Failed`, the attempt count, `last_result` as `{"Err": …}`, `done_at`), so it is fetched again while attempts
/// remain. A job that finished is deleted when `keep_finished` is false (`worker.job_retention_secs = 0`, the
/// default): our delivery and connector-job rows are its record, and deleting costs the table one dead row version,
/// where marking it `Done` writes a new version into every index of `apalis.jobs` (status is in their predicates)
/// and the sweep's delete later writes again. With `keep_finished` it is marked `Done` (`{"Ok": null}`) and swept
/// after the retention. Ours is keyed by job id: apalis' statement joins its payload to every job the worker ever
/// locked (`lock_by`), finished ones included, and was half of Postgres' statement time at 200 deliveries/s
/// (issue 11).
pub async fn ack(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    acks: &[Ack],
    keep_finished: bool,
) -> Result<(), sqlx::Error> {
    if acks.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = acks.iter().map(|a| a.task_id.to_string()).collect();
    let statuses: Vec<&str> = acks
        .iter()
        .map(|a| if a.result.is_ok() { "Done" } else { "Failed" })
        .collect();
    let attempts: Vec<i32> = acks
        .iter()
        .map(|a| i32::try_from(a.attempt).unwrap_or(i32::MAX))
        .collect();
    let results: Vec<serde_json::Value> = acks
        .iter()
        .map(|a| match &a.result {
            Ok(()) => serde_json::json!({"Ok": null}),
            Err(e) => serde_json::json!({"Err": e}),
        })
        .collect();
    sqlx::query(
        "WITH i AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::jsonb[]) AS i(id, status, attempts, result)
         ), locked AS (
             SELECT j.id, i.status = 'Done' AND NOT $6 AS remove
             FROM apalis.jobs j JOIN i USING (id) WHERE j.lock_by = $5 ORDER BY j.id FOR UPDATE OF j
         ), removed AS (
             DELETE FROM apalis.jobs j USING locked WHERE j.id = locked.id AND locked.remove
         )
         UPDATE apalis.jobs j
         SET status = i.status, attempts = i.attempts, last_result = i.result, done_at = now()
         FROM i JOIN locked USING (id)
         WHERE j.id = i.id AND NOT locked.remove",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&attempts)
    .bind(&results)
    .bind(worker.name())
    .bind(keep_finished)
    .execute(conn)
    .await?;
    Ok(())
}

/// How long until the next waiting job of our queue is due (`ZERO`: one is due now; `None`: nothing waits), by the
/// database's clock. Reads apalis' own fetch index (`priority DESC, run_at`; every job of ours has priority 0).
pub async fn next_due(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT GREATEST(EXTRACT(EPOCH FROM (run_at - now())), 0)::float8 FROM apalis.jobs
         WHERE job_type = $1 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
         ORDER BY priority DESC, run_at LIMIT 1",
    )
    .bind(QUEUE)
    .fetch_optional(pool)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Scheduled jobs are counted exactly up to this many; above it, the figure is Postgres' estimate.
const EXACT_SCHEDULED: i64 = 10_000;

/// Jobs waiting in our queue: due now (or claimed), and scheduled for later. A scrape must stay cheap however many
/// retries wait: the due count walks apalis' fetch index up to now (every job of ours has priority 0) and the
/// claimed jobs' index; the scheduled count stops at [`EXACT_SCHEDULED`], and above it is the planner's estimate
/// from the table's statistics (kept fresh by the sweep's `analyze_if_changed`), within a few percent. Before, both
/// were one `count(*)` over every waiting job: 0.4 s per scrape with a million retries waiting.
pub async fn depth(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    let (due, scheduled): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM apalis.jobs WHERE job_type = $1
                   AND ((status = 'Pending' AND priority = 0 AND run_at <= now()) OR status IN ('Queued', 'Running'))),
                (SELECT count(*) FROM (SELECT 1 FROM apalis.jobs
                   WHERE job_type = $1 AND status = 'Pending' AND run_at > now() LIMIT $2) s)",
    )
    .bind(QUEUE)
    .bind(EXACT_SCHEDULED + 1)
    .fetch_one(pool)
    .await?;
    if scheduled <= EXACT_SCHEDULED {
        return Ok((due, scheduled));
    }
    // EXPLAIN takes no parameters: the queue's name is a constant, never input.
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM apalis.jobs
         WHERE job_type = '{QUEUE}' AND status = 'Pending' AND run_at > now()"
    )))
    .fetch_one(pool)
    .await?;
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    Ok((due, estimate.max(scheduled)))
}

/// Delete acknowledged jobs older than `retention` (our delivery rows are the record; apalis keeps finished
/// jobs forever otherwise, and they would bloat the claim's indexes). One worker at a time does it (advisory lock).
/// The partial index `apalis_jobs_finished` keeps it to finished jobs, whatever waits in the queue.
/// Returns how many rows were deleted.
pub async fn sweep_finished(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let Some(mut tx) = begin_alone(pool, "sweep").await? else {
        return Ok(0);
    };
    let deleted = sqlx::query(
        "DELETE FROM apalis.jobs WHERE id IN (
             SELECT id FROM apalis.jobs
             WHERE job_type = $1 AND status = 'Done' AND done_at < now() - make_interval(secs => $2)
             LIMIT 50000 FOR UPDATE SKIP LOCKED)",
    )
    .bind(QUEUE)
    .bind(retention.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}
