//! How connector sync jobs are stored: `connector_jobs` rows (loaded with their connector), one OUTBOUND
//! `connector_sync_log` row per attempt, and a `connector.dead_lettered` event.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connectors::{ConnectorConfig, ConnectorEvent};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::attempt::{AttemptState, AttemptStatus};
use workflows::connector::{job_status_name, parse_job_status};
use workflows::ids::{ConnectorId, ConnectorJobId, EventId};

use crate::connector::handler::{ConnectorDeps, ConnectorJobToRun, SyncRecord};
use crate::queue::attempts::{AttemptTable, RowUpdate, lanes};
use crate::queue::effects::published_event;

/// The sync-log status of an attempt: it failed, had nothing to do, or wrote its records.
fn run_status(r: &SyncRecord) -> &'static str {
    match (&r.extras.failure, &r.extras.skipped) {
        (Some(_), _) => "FAILED",
        (None, Some(_)) => "SKIPPED",
        (None, None) => "SUCCEEDED",
    }
}

/// The OUTBOUND sync-log columns of attempts, one entry per record.
#[derive(Default)]
struct LogColumns<'a> {
    run_id: Vec<Uuid>,
    config_id: Vec<Uuid>,
    store_id: Vec<&'a str>,
    entity_type: Vec<&'a str>,
    records: Vec<i32>,
    run_status: Vec<&'static str>,
    error: Vec<Option<&'a str>>,
    job_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    attempt: Vec<i32>,
    requests: Vec<i32>,
    worker: Vec<&'a str>,
    started_at: Vec<chrono::DateTime<chrono::Utc>>,
    finished_at: Vec<chrono::DateTime<chrono::Utc>>,
}

impl<'a> LogColumns<'a> {
    fn of(records: &[&'a SyncRecord]) -> Self {
        let mut c = Self::default();
        for r in records {
            c.run_id.push(Uuid::now_v7());
            c.config_id.push(r.loaded.config.config_id.uuid());
            c.store_id.push(&r.loaded.config.store_id);
            c.entity_type.push(&r.extras.entity_type);
            c.records.push(r.extras.records as i32);
            c.run_status.push(run_status(r));
            c.error.push(r.last_error.as_deref());
            c.job_id.push(r.loaded.job_id.uuid());
            c.event_type.push(&r.loaded.event.event_type);
            c.attempt.push(r.attempt_number as i32);
            c.requests.push(r.extras.requests as i32);
            c.worker.push(&r.worker);
            c.started_at.push(r.started_at);
            c.finished_at.push(r.finished_at);
        }
        c
    }
}

/// The sync-log insert of recorded attempts, with their lanes' health (`$2`, the connector, is the lane).
static LOG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}
         INSERT INTO connector_sync_log (run_id, config_id, store_id, direction, entity_type, record_count, status, error_summary,
                                         job_id, event_type, attempt_number, requests, worker, started_at, finished_at)
         SELECT run_id, config_id, store_id, 'OUTBOUND', entity_type, record_count, status, error_summary, job_id, event_type,
                attempt_number, requests, worker, started_at, finished_at
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::uuid[], $9::text[],
                     $10::int[], $11::int[], $12::text[], $13::timestamptz[], $14::timestamptz[])
           AS i(run_id, config_id, store_id, entity_type, record_count, status, error_summary, job_id, event_type,
                attempt_number, requests, worker, started_at, finished_at)",
        lanes::health("$2", "$15")
    )
});

#[async_trait]
impl AttemptTable for ConnectorDeps {
    const TABLE: &'static str = "connector_jobs";
    const ID: &'static str = "job_id";
    const OWNER: &'static str = "config_id";
    const OWNER_TABLE: &'static str = "connector_configs";
    const DONE_AT: &'static str = "completed_at";
    const EXTRA_SET: &'static str = "";
    const EXTRA_UNNEST: &'static str = "";
    const EXTRA_NAMES: &'static str = "";

    fn status_name(status: AttemptStatus) -> &'static str {
        job_status_name(status)
    }

    async fn load(
        pool: &PgPool,
        ids: &[ConnectorJobId],
    ) -> anyhow::Result<HashMap<ConnectorJobId, ConnectorJobToRun>> {
        Ok(load_jobs(pool, ids).await?)
    }

    fn bind_extras<'q>(update: RowUpdate<'q>, _: &[&SyncRecord]) -> RowUpdate<'q> {
        update
    }

    async fn log(conn: &mut PgConnection, records: &[&SyncRecord]) -> sqlx::Result<()> {
        let c = LogColumns::of(records);
        // One statement: the log rows, and the health of their connectors' lanes.
        sqlx::query(sqlx::AssertSqlSafe(LOG.as_str()))
            .bind(&c.run_id)
            .bind(&c.config_id)
            .bind(&c.store_id)
            .bind(&c.entity_type)
            .bind(&c.records)
            .bind(&c.run_status)
            .bind(&c.error)
            .bind(&c.job_id)
            .bind(&c.event_type)
            .bind(&c.attempt)
            .bind(&c.requests)
            .bind(&c.worker)
            .bind(&c.started_at)
            .bind(&c.finished_at)
            .bind(records.iter().map(|r| r.slow).collect::<Vec<bool>>())
            .execute(conn)
            .await?;
        Ok(())
    }

    fn published(r: &SyncRecord) -> Option<(String, Value)> {
        if r.decision.status != AttemptStatus::DeadLettered {
            return None;
        }
        let job = &r.loaded;
        let data = json!({
            "jobId": job.job_id, "configId": job.config.config_id, "connectorType": job.config.connector_type,
            "eventId": job.event.event_id, "eventType": job.event.event_type,
            "reason": r.extras.failure.as_ref().map(|f| f.reason.clone()), "attempts": r.attempt_number,
        });
        let event = published_event("connector.dead_lettered", &job.config.store_id, data);
        Some((job.job_id.to_string(), event))
    }
}

#[derive(sqlx::FromRow)]
struct JobLoad {
    job_id: ConnectorJobId,
    config_id: ConnectorId,
    store_id: String,
    connector_type: String,
    settings: Value,
    config_active: bool,
    status: String,
    attempt_number: i32,
    next_retry_at: Option<DateTime<Utc>>,
    dispatch_seq: i32,
    event_id: EventId,
    event_type: String,
    /// The event's `data` (its body is stored once, on the ingested event).
    event_data: Option<Value>,
    trace_context: Option<String>,
}

/// Load connector jobs (with their configs) for the worker, in one query; rows with an unknown status are left out.
async fn load_jobs(
    pool: &PgPool,
    ids: &[ConnectorJobId],
) -> Result<HashMap<ConnectorJobId, ConnectorJobToRun>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<JobLoad> = sqlx::query_as(
        "SELECT j.job_id, j.config_id, c.store_id, c.connector_type, c.settings,
                (c.is_active AND c.deleted_at IS NULL) AS config_active, j.status, j.attempt_number, j.next_retry_at,
                j.dispatch_seq, j.event_id, j.event_type, e.payload -> 'data' AS event_data, j.trace_context
         FROM connector_jobs j JOIN connector_configs c USING (config_id)
              LEFT JOIN ingested_events e ON e.event_id = j.event_id
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
                state: AttemptState {
                    status,
                    attempt_number: r.attempt_number.max(0) as u32,
                    next_retry_at: r.next_retry_at,
                    dispatch_seq: r.dispatch_seq,
                },
                event: ConnectorEvent {
                    event_id: r.event_id,
                    event_type: r.event_type,
                    data: r.event_data.unwrap_or(Value::Null),
                },
                trace_context: r.trace_context,
            };
            Some((r.job_id, job))
        })
        .collect())
}
