//! Connector jobs: one outbound sync of one event to one connector, attempted by the attempt engine (its writer and
//! re-trigger are the shared ones of `jobs::queue::attempts`).

use chrono::{DateTime, Utc};
use jobs::connector::handler::ConnectorDeps;
use jobs::queue::attempts::{self, Retriggered};
use sqlx::PgPool;
use workflows::attempt::Retrigger;
use workflows::ids::{ConnectorId, ConnectorJobId, EventId};

/// A connector job as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// The job.
    pub job_id: ConnectorJobId,
    /// The connector it pushes to.
    pub config_id: ConnectorId,
    /// Type of the event it pushes.
    pub event_type: String,
    /// The event it pushes.
    pub event_id: EventId,
    /// PENDING, FAILED, SUCCEEDED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule (0 after a re-trigger).
    pub attempt_number: i32,
    /// When the next attempt is due (set while FAILED).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When an attempt succeeded.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last failure, or why the last attempt had nothing to do.
    pub last_error: Option<String>,
    /// When the job was created (its event was ingested).
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of a config's jobs, newest first, optionally of one status.
pub async fn list_jobs(
    pool: &PgPool,
    store_id: &str,
    config_id: ConnectorId,
    status: Option<&str>,
    before: Option<ConnectorJobId>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job_id, config_id, event_type, event_id, status, attempt_number, next_retry_at, completed_at, last_error, created_at, updated_at
         FROM connector_jobs j
         WHERE store_id = $1 AND config_id = $2 AND ($3::text IS NULL OR status = $3)
           AND ($4::uuid IS NULL OR (created_at, job_id) < (SELECT created_at, job_id FROM connector_jobs WHERE job_id = $4))
         ORDER BY created_at DESC, job_id DESC LIMIT $5",
    )
    .bind(store_id)
    .bind(config_id)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Restart a dead-lettered or cancelled job of an active config (the shared re-trigger path): attempt counter to 0,
/// a fresh job due now. `None` when the job is not restartable (or unknown).
pub async fn retrigger(
    pool: &PgPool,
    store_id: &str,
    config_id: ConnectorId,
    job_id: ConnectorJobId,
) -> Result<Option<JobRow>, sqlx::Error> {
    let scope = Retriggered {
        store_id,
        which: Retrigger::DeadOrCancelled,
        owner: Some(config_id.uuid()),
        id: Some(job_id.uuid()),
        dead_since: None,
    };
    if attempts::retrigger::<ConnectorDeps>(pool, &scope)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    get_job(pool, store_id, config_id, job_id).await
}

/// One job of a config.
pub async fn get_job(
    pool: &PgPool,
    store_id: &str,
    config_id: ConnectorId,
    job_id: ConnectorJobId,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job_id, config_id, event_type, event_id, status, attempt_number, next_retry_at, completed_at, last_error, created_at, updated_at
         FROM connector_jobs WHERE store_id = $1 AND config_id = $2 AND job_id = $3",
    )
    .bind(store_id)
    .bind(config_id)
    .bind(job_id)
    .fetch_optional(pool)
    .await
}
