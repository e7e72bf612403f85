//! The connector sync log: one row per outbound attempt and per inbound poll, newest first.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use workflows::ids::{ConnectorId, ConnectorJobId, SyncRunId};

/// A sync-log row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncRunRow {
    /// Id (UUIDv7: newer runs have greater ids).
    pub run_id: SyncRunId,
    /// The connector the run belongs to.
    pub config_id: ConnectorId,
    /// INBOUND or OUTBOUND.
    pub direction: String,
    /// What was synced (`listing`, `inventory`, `order`, …).
    pub entity_type: String,
    /// Records sent (outbound) or found (inbound) by the run.
    pub record_count: i32,
    /// SUCCEEDED, FAILED, SKIPPED.
    pub status: String,
    /// Error or skip reason.
    pub error_summary: Option<String>,
    /// Outbound job.
    pub job_id: Option<ConnectorJobId>,
    /// Outbound event.
    pub event_type: Option<String>,
    /// Outbound attempt.
    pub attempt_number: Option<i32>,
    /// Inbound poll number.
    pub poll_seq: Option<i32>,
    /// Requests sent.
    pub requests: i32,
    /// The worker process that ran it.
    pub worker: String,
    /// When the run started (service clock).
    pub started_at: DateTime<Utc>,
    /// When the run ended (service clock).
    pub finished_at: DateTime<Utc>,
}

/// Sync-log filters.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// INBOUND / OUTBOUND.
    pub direction: Option<String>,
    /// Only runs with this status (`SUCCEEDED`, `FAILED`, …).
    pub status: Option<String>,
    /// Only runs of this entity type.
    pub entity_type: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Page after this run (older).
    pub before: Option<SyncRunId>,
}

/// A page of a config's sync log, newest first.
pub async fn sync_log(
    pool: &PgPool,
    store_id: &str,
    config_id: ConnectorId,
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
