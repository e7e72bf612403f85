//! Connector configs, their outbound jobs, polls and the sync log.

use std::collections::HashMap;
use std::time::Duration;

use ::connectors::{ConnectorConfig, ConnectorEvent};
use chrono::{DateTime, Utc};
use jobs::Job;
use jobs::connector::handler::{ConnectorJobToRun, PollConnector, PollToRun, SyncConnector};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::connector::parse_job_status;

use super::queue;

/// A config row (never credentials).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConfigRow {
    /// Id.
    pub config_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Type.
    pub connector_type: String,
    /// Name.
    pub display_name: String,
    /// Active.
    pub is_active: bool,
    /// Events it receives.
    pub event_subscriptions: Vec<String>,
    /// Non-sensitive settings.
    pub settings: Value,
    /// Credential fields that are set.
    pub credentials_set: Vec<String>,
    /// When credentials last changed.
    pub credentials_updated_at: Option<DateTime<Utc>>,
    /// Poll interval.
    pub poll_interval_secs: Option<i32>,
    /// Next scheduled poll.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Where the last poll stopped.
    pub poll_cursor: Option<String>,
    /// Last poll.
    pub last_polled_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

const CONFIG_COLUMNS: &str = "config_id, store_id, connector_type, display_name, is_active, event_subscriptions, settings,
    credentials_set, credentials_updated_at, poll_interval_secs, next_poll_at, poll_cursor, last_polled_at, created_at, updated_at";

/// A new config.
#[derive(Debug, Clone)]
pub struct NewConfig<'a> {
    /// Store.
    pub store_id: &'a str,
    /// Type.
    pub connector_type: &'a str,
    /// Name.
    pub display_name: &'a str,
    /// Events.
    pub events: &'a [String],
    /// Settings.
    pub settings: &'a Value,
    /// Poll interval.
    pub poll_interval_secs: Option<i32>,
}

/// Insert a config (inactive: activation needs credentials).
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewConfig<'_>,
) -> Result<ConfigRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO connector_configs (config_id, store_id, connector_type, display_name, event_subscriptions, settings, poll_interval_secs)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CONFIG_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(new.store_id)
    .bind(new.connector_type)
    .bind(new.display_name)
    .bind(new.events)
    .bind(new.settings)
    .bind(new.poll_interval_secs)
    .fetch_one(conn)
    .await
}

/// One config of a store (`FOR UPDATE` inside a transaction when `lock`).
pub async fn get(
    conn: &mut PgConnection,
    store_id: &str,
    config_id: Uuid,
    lock: bool,
) -> Result<Option<ConfigRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONFIG_COLUMNS} FROM connector_configs WHERE store_id = $1 AND config_id = $2 AND deleted_at IS NULL{lock}"
    )))
    .bind(store_id)
    .bind(config_id)
    .fetch_optional(conn)
    .await
}

/// A page of a store's configs, oldest first.
pub async fn list(
    pool: &PgPool,
    store_id: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ConfigRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONFIG_COLUMNS} FROM connector_configs
         WHERE store_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR config_id > $2)
         ORDER BY config_id LIMIT $3"
    )))
    .bind(store_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Changes to a config; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// Name.
    pub display_name: Option<String>,
    /// Events.
    pub events: Option<Vec<String>>,
    /// Settings (replaced whole).
    pub settings: Option<Value>,
    /// `Some(None)` turns polling off.
    pub poll_interval_secs: Option<Option<i32>>,
    /// Activity.
    pub is_active: Option<bool>,
}

/// Apply a patch to a locked config. Deactivating cancels its waiting jobs and supersedes its queued poll.
pub async fn update(
    conn: &mut PgConnection,
    store_id: &str,
    config_id: Uuid,
    patch: &Patch,
) -> Result<Option<ConfigRow>, sqlx::Error> {
    let row: Option<ConfigRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE connector_configs SET
           display_name = COALESCE($3, display_name),
           event_subscriptions = COALESCE($4, event_subscriptions),
           settings = COALESCE($5, settings),
           poll_interval_secs = CASE WHEN $6 THEN $7 ELSE poll_interval_secs END,
           is_active = COALESCE($8, is_active),
           poll_seq = CASE WHEN $8 IS FALSE THEN poll_seq + 1 ELSE poll_seq END,
           next_poll_at = CASE WHEN $8 IS FALSE THEN NULL ELSE next_poll_at END,
           updated_at = now()
         WHERE store_id = $1 AND config_id = $2 AND deleted_at IS NULL
         RETURNING {CONFIG_COLUMNS}"
    )))
    .bind(store_id)
    .bind(config_id)
    .bind(&patch.display_name)
    .bind(&patch.events)
    .bind(&patch.settings)
    .bind(patch.poll_interval_secs.is_some())
    .bind(patch.poll_interval_secs.flatten())
    .bind(patch.is_active)
    .fetch_optional(&mut *conn)
    .await?;
    if patch.is_active == Some(false) && row.is_some() {
        cancel_waiting(conn, config_id, "connector config deactivated").await?;
    }
    Ok(row)
}

/// Soft-delete a config: no more jobs or polls; the sync log keeps its history.
pub async fn delete(
    conn: &mut PgConnection,
    store_id: &str,
    config_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE connector_configs SET deleted_at = now(), is_active = FALSE, poll_seq = poll_seq + 1, next_poll_at = NULL,
                updated_at = now()
         WHERE store_id = $1 AND config_id = $2 AND deleted_at IS NULL",
    )
    .bind(store_id)
    .bind(config_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        cancel_waiting(conn, config_id, "connector config deleted").await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Whether a deleted config still has credentials to erase: its tombstone keeps `credentials_set` until the secret
/// store confirms the erasure (see [`credentials_erased`]), so a failed erasure can be retried.
pub async fn pending_erasure(
    pool: &PgPool,
    store_id: &str,
    config_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let pending: Option<bool> = sqlx::query_scalar(
        "SELECT credentials_set <> '{}' FROM connector_configs
         WHERE store_id = $1 AND config_id = $2 AND deleted_at IS NOT NULL",
    )
    .bind(store_id)
    .bind(config_id)
    .fetch_optional(pool)
    .await?;
    Ok(pending.unwrap_or(false))
}

/// Record that a deleted config's credentials are gone from the secret store.
pub async fn credentials_erased(pool: &PgPool, config_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_configs SET credentials_set = '{}'
         WHERE config_id = $1 AND deleted_at IS NOT NULL",
    )
    .bind(config_id)
    .execute(pool)
    .await?;
    Ok(())
}

async fn cancel_waiting(
    conn: &mut PgConnection,
    config_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE connector_jobs SET status = 'CANCELLED', next_retry_at = NULL, last_error = $2, updated_at = now()
         WHERE config_id = $1 AND status IN ('PENDING', 'FAILED')",
    )
    .bind(config_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Record which credential fields are now set.
pub async fn mark_credentials(
    conn: &mut PgConnection,
    config_id: Uuid,
    fields: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE connector_configs SET credentials_set = $2, credentials_updated_at = now(), updated_at = now() WHERE config_id = $1")
        .bind(config_id)
        .bind(fields)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queue a poll of an active polling config `delay` from now, superseding any queued one. `None` if it does not poll.
/// `now` is the service clock's (the worker compares `next_poll_at` with its own clock).
pub async fn schedule_poll(
    conn: &mut PgConnection,
    config_id: Uuid,
    now: DateTime<Utc>,
    delay: Duration,
) -> Result<Option<i32>, sqlx::Error> {
    let seq: Option<i32> = sqlx::query_scalar(
        "UPDATE connector_configs SET poll_seq = poll_seq + 1, next_poll_at = $2
         WHERE config_id = $1 AND is_active AND deleted_at IS NULL AND poll_interval_secs IS NOT NULL
         RETURNING poll_seq",
    )
    .bind(config_id)
    .bind(now + chrono::Duration::from_std(delay).unwrap_or_default())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(poll_seq) = seq {
        queue::push(
            conn,
            vec![(
                Job::ConnectorPoll(PollConnector {
                    config_id,
                    poll_seq,
                }),
                delay,
            )],
        )
        .await
        .map_err(queue::as_sqlx)?;
    }
    Ok(seq)
}

#[derive(sqlx::FromRow)]
struct JobLoad {
    job_id: Uuid,
    config_id: Uuid,
    store_id: String,
    connector_type: String,
    settings: Value,
    config_active: bool,
    status: String,
    attempt_number: i32,
    next_retry_at: Option<DateTime<Utc>>,
    dispatch_seq: i32,
    event_id: Uuid,
    event_type: String,
    event_payload: Value,
}

/// Load connector jobs (with their configs) for the worker.
pub async fn load_jobs(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ConnectorJobToRun>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<JobLoad> = sqlx::query_as(
        "SELECT j.job_id, j.config_id, c.store_id, c.connector_type, c.settings,
                (c.is_active AND c.deleted_at IS NULL) AS config_active, j.status, j.attempt_number, j.next_retry_at,
                j.dispatch_seq, j.event_id, j.event_type, j.event_payload
         FROM connector_jobs j JOIN connector_configs c USING (config_id)
         WHERE j.job_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let status = parse_job_status(&r.status)?;
            let job = ConnectorJobToRun {
                job_id: r.job_id,
                config: ConnectorConfig {
                    config_id: r.config_id,
                    store_id: r.store_id,
                    connector_type: r.connector_type,
                    settings: r.settings,
                },
                config_active: r.config_active,
                status,
                attempt_number: r.attempt_number.max(0) as u32,
                next_retry_at: r.next_retry_at,
                dispatch_seq: r.dispatch_seq,
                event: ConnectorEvent {
                    event_id: r.event_id,
                    event_type: r.event_type,
                    data: r.event_payload.get("data").cloned().unwrap_or(Value::Null),
                },
            };
            Some((r.job_id, job))
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct PollLoad {
    config_id: Uuid,
    store_id: String,
    connector_type: String,
    settings: Value,
    active: bool,
    poll_seq: i32,
    poll_cursor: Option<String>,
    poll_interval_secs: Option<i32>,
    next_poll_at: Option<DateTime<Utc>>,
}

/// Load the configs of poll jobs.
pub async fn load_polls(
    pool: &PgPool,
    config_ids: &[Uuid],
) -> Result<HashMap<Uuid, PollToRun>, sqlx::Error> {
    if config_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<PollLoad> = sqlx::query_as(
        "SELECT config_id, store_id, connector_type, settings,
                (is_active AND deleted_at IS NULL AND poll_interval_secs IS NOT NULL) AS active,
                poll_seq, poll_cursor, poll_interval_secs, next_poll_at
         FROM connector_configs WHERE config_id = ANY($1)",
    )
    .bind(config_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let poll = PollToRun {
                config: ConnectorConfig {
                    config_id: r.config_id,
                    store_id: r.store_id,
                    connector_type: r.connector_type,
                    settings: r.settings,
                },
                active: r.active,
                poll_seq: r.poll_seq,
                cursor: r.poll_cursor,
                interval: Duration::from_secs(r.poll_interval_secs.unwrap_or(300).max(1) as u64),
                next_poll_at: r.next_poll_at,
            };
            (r.config_id, poll)
        })
        .collect())
}

/// A connector job as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Id.
    pub job_id: Uuid,
    /// Config.
    pub config_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Event id.
    pub event_id: Uuid,
    /// Status.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// Next attempt.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Last error.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A page of a config's jobs, newest first, optionally of one status.
pub async fn list_jobs(
    pool: &PgPool,
    store_id: &str,
    config_id: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
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

/// Restart a dead-lettered or cancelled job of an active config: attempt counter to 0, a fresh job due now.
pub async fn retrigger(
    pool: &PgPool,
    store_id: &str,
    config_id: Uuid,
    job_id: Uuid,
) -> Result<Option<JobRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, i32)> = sqlx::query_as(
        "UPDATE connector_jobs j SET status = 'PENDING', attempt_number = 0, next_retry_at = NULL, completed_at = NULL,
                dispatch_seq = dispatch_seq + 1, updated_at = now()
         FROM connector_configs c
         WHERE c.config_id = j.config_id AND c.is_active AND c.deleted_at IS NULL
           AND j.store_id = $1 AND j.config_id = $2 AND j.job_id = $3 AND j.status IN ('DEAD_LETTERED', 'CANCELLED')
         RETURNING j.job_id, j.dispatch_seq",
    )
    .bind(store_id)
    .bind(config_id)
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((job_id, dispatch_seq)) = row else {
        return Ok(None);
    };
    queue::push(
        &mut tx,
        vec![(
            Job::ConnectorSync(SyncConnector {
                job_id,
                dispatch_seq,
            }),
            Duration::ZERO,
        )],
    )
    .await
    .map_err(queue::as_sqlx)?;
    tx.commit().await?;
    get_job(pool, store_id, config_id, job_id).await
}

/// One job of a config.
pub async fn get_job(
    pool: &PgPool,
    store_id: &str,
    config_id: Uuid,
    job_id: Uuid,
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

/// A sync-log row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncRunRow {
    /// Id (UUIDv7).
    pub run_id: Uuid,
    /// Config.
    pub config_id: Uuid,
    /// INBOUND or OUTBOUND.
    pub direction: String,
    /// Entity.
    pub entity_type: String,
    /// Records.
    pub record_count: i32,
    /// SUCCEEDED, FAILED, SKIPPED.
    pub status: String,
    /// Error or skip reason.
    pub error_summary: Option<String>,
    /// Outbound job.
    pub job_id: Option<Uuid>,
    /// Outbound event.
    pub event_type: Option<String>,
    /// Outbound attempt.
    pub attempt_number: Option<i32>,
    /// Inbound poll number.
    pub poll_seq: Option<i32>,
    /// Requests sent.
    pub requests: i32,
    /// Worker.
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
}

/// Sync-log filters.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// INBOUND / OUTBOUND.
    pub direction: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Entity.
    pub entity_type: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Page after this run (older).
    pub before: Option<Uuid>,
}

/// A page of a config's sync log, newest first.
pub async fn sync_log(
    pool: &PgPool,
    store_id: &str,
    config_id: Uuid,
    f: &LogFilter,
    limit: i64,
) -> Result<Vec<SyncRunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, config_id, direction, entity_type, record_count, status, error_summary, job_id, event_type,
                attempt_number, poll_seq, requests, worker, started_at, finished_at
         FROM connector_sync_log
         WHERE store_id = $1 AND config_id = $2 AND ($3::text IS NULL OR direction = $3) AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR entity_type = $5) AND ($6::timestamptz IS NULL OR started_at >= $6)
           AND ($7::uuid IS NULL OR run_id < $7)
         ORDER BY run_id DESC LIMIT $8",
    )
    .bind(store_id)
    .bind(config_id)
    .bind(&f.direction)
    .bind(&f.status)
    .bind(&f.entity_type)
    .bind(f.since)
    .bind(f.before)
    .bind(limit)
    .fetch_all(pool)
    .await
}
