//! The apalis-postgres queue: enqueue inside our transactions, claim, acknowledge, heartbeat.
//!
//! We use apalis-postgres' storage and its own queries (`push_tasks`, `fetch_next` with `FOR UPDATE SKIP LOCKED`,
//! `handle_results`, `keep_alive`, `reenqueue_orphaned`; the `apalis.workers` row is inserted here because
//! `register_worker` takes a crate-private type); apalis' status column is only ever
//! written by those queries.

use std::time::{Duration, SystemTime};

use apalis_core::backend::TaskResult;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config as ApalisConfig, PgTask, queries};
use jobs::Job;
use jobs::job::QUEUE;
use sqlx::{PgConnection, PgPool};

/// How often apalis re-fetches a job whose handler hit an infrastructure error before giving up on it.
const MAX_INFRA_RETRIES: usize = 25;

/// Queue `jobs` (each with the real delay before it is due) in the caller's transaction.
pub async fn push(
    conn: &mut PgConnection,
    jobs: Vec<(Job, Duration)>,
) -> Result<(), apalis_postgres::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let now = SystemTime::now();
    let tasks: Vec<PgTask> = jobs
        .into_iter()
        .map(|(job, delay)| {
            TaskBuilder::new(job.encode())
                .run_at_time(now + delay)
                .idempotency_key(job.idempotency_key())
                .max_attempts(MAX_INFRA_RETRIES)
                .build()
        })
        .collect();
    queries::push_tasks(conn, QUEUE, tasks).await
}

/// A queue error inside a repository function that returns `sqlx::Error` (apalis wraps sqlx underneath).
/// The database's own error is passed through unchanged, so `db::errors::fault` still sees its SQLSTATE.
pub fn as_sqlx(e: apalis_postgres::Error) -> sqlx::Error {
    match e {
        apalis_postgres::Error::Database(e) => e,
        other => sqlx::Error::Protocol(format!("queue: {other}")),
    }
}

/// apalis' config for our queue, with heartbeats set explicitly (its Default has 10 missed heartbeats).
pub fn apalis_config(
    batch_size: usize,
    heartbeat: Duration,
    missed_heartbeats: usize,
) -> ApalisConfig {
    ApalisConfig::default()
        .queue(QUEUE)
        .batch_size(batch_size)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed_heartbeats)
}

/// Register the worker (re-queues jobs of dead workers first).
pub async fn register(
    pool: &PgPool,
    config: &ApalisConfig,
    worker: &WorkerContext,
) -> Result<(), apalis_postgres::Error> {
    let mut tx = pool.begin().await?;
    queries::reenqueue_orphaned(&mut *tx, QUEUE, config.orphaned_duration().as_secs()).await?;
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

/// Heartbeat, then re-queue the jobs of workers that stopped beating. Returns how many were re-queued.
pub async fn heartbeat(
    pool: &PgPool,
    config: &ApalisConfig,
    worker: &WorkerContext,
) -> Result<u64, apalis_postgres::Error> {
    let mut tx = pool.begin().await?;
    if queries::keep_alive(&mut *tx, QUEUE, worker).await.is_err() {
        // Our row vanished (e.g. the database was restored): register again.
        drop(tx);
        register(pool, config, worker).await?;
        return Ok(0);
    }
    let requeued =
        queries::reenqueue_orphaned(&mut *tx, QUEUE, config.orphaned_duration().as_secs()).await?;
    tx.commit().await?;
    Ok(requeued)
}

/// Claim up to `batch_size` due jobs.
pub async fn fetch(
    pool: &PgPool,
    config: &ApalisConfig,
    worker: &WorkerContext,
) -> Result<Vec<PgTask>, apalis_postgres::Error> {
    let mut tx = pool.begin().await?;
    let tasks = queries::fetch_next(&mut *tx, config, worker).await?;
    tx.commit().await?;
    Ok(tasks)
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

/// Report finished jobs to apalis in one statement, in the caller's transaction.
pub async fn ack(
    conn: &mut PgConnection,
    worker: &WorkerContext,
    acks: &[Ack],
) -> Result<(), apalis_postgres::Error> {
    if acks.is_empty() {
        return Ok(());
    }
    let results: Vec<queries::ResultPayload> = acks
        .iter()
        .map(|a| TaskResult {
            task_id: a.task_id.clone(),
            attempt: a.attempt,
            status: if a.result.is_ok() {
                Status::Done
            } else {
                Status::Failed
            },
            result: a.result.clone().map(|()| serde_json::Value::Null),
        })
        .collect();
    let refs: Vec<&queries::ResultPayload> = results.iter().collect();
    queries::handle_results(conn, &refs, worker.name()).await?;
    Ok(())
}

/// Jobs waiting in our queue: due now, and scheduled for later.
pub async fn depth(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE run_at <= now()), count(*) FILTER (WHERE run_at > now())
         FROM apalis.jobs WHERE job_type = $1 AND status IN ('Pending', 'Queued', 'Running')",
    )
    .bind(QUEUE)
    .fetch_one(pool)
    .await
}

/// Delete acknowledged jobs older than `retention` (our delivery rows are the record; apalis keeps finished
/// jobs forever otherwise, and its acknowledgement query slows down as they pile up), then refresh the
/// planner's statistics. One worker at a time does it (advisory lock). Returns how many rows were deleted.
pub async fn sweep_finished(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('integration-service:sweep'))",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !locked {
        return Ok(0);
    }
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
    sqlx::query("ANALYZE apalis.jobs").execute(pool).await?;
    Ok(deleted)
}
