//! Writes the effects of finished connector jobs in the worker's flush transaction: the sync log, the job's next
//! state and next attempt, dead-letter events; for polls, the cursor, newly seen records as events, the next poll.

use std::time::Duration;

use jobs::Job;
use jobs::connector::handler::{Effect, PollConnector, PollRecord, SyncConnector, SyncRecord};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;
use workflows::DeliveryStatus;
use workflows::connector::job_status_name;

use super::deliveries::published_event;
use super::queue;

/// Topics effects publish to.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `connector.dead_lettered` (with the webhook events).
    pub publish: String,
    /// Records pulled from channels (`marketplace.order.received`).
    pub inbound: String,
}

/// Apply connector effects.
pub async fn apply(
    conn: &mut PgConnection,
    effects: &[&Effect],
    topics: &Topics,
) -> anyhow::Result<()> {
    let mut next_jobs: Vec<(Job, Duration)> = Vec::new();
    let mut outbox: Vec<(String, String, Value)> = Vec::new();
    let synced: Vec<&SyncRecord> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Synced(r) = e {
                Some(r.as_ref())
            } else {
                None
            }
        })
        .collect();
    if !synced.is_empty() {
        record_syncs(conn, &synced, topics, &mut next_jobs, &mut outbox).await?;
    }
    for effect in effects {
        match effect {
            Effect::Cancel {
                job_id,
                dispatch_seq,
                reason,
            } => {
                sqlx::query(
                    "UPDATE connector_jobs SET status = 'CANCELLED', next_retry_at = NULL, last_error = $3, updated_at = now()
                     WHERE job_id = $1 AND dispatch_seq = $2 AND status IN ('PENDING', 'FAILED')",
                )
                .bind(job_id)
                .bind(dispatch_seq)
                .bind(reason)
                .execute(&mut *conn)
                .await?;
            }
            Effect::Defer {
                job_id,
                dispatch_seq,
                run_in,
                reason,
            } => {
                let moved = sqlx::query(
                    "UPDATE connector_jobs SET dispatch_seq = dispatch_seq + 1, updated_at = now(),
                            last_error = COALESCE('deferred, no attempt counted: ' || $3, last_error)
                     WHERE job_id = $1 AND dispatch_seq = $2 AND status IN ('PENDING', 'FAILED')",
                )
                .bind(job_id)
                .bind(dispatch_seq)
                .bind(reason)
                .execute(&mut *conn)
                .await?;
                if moved.rows_affected() == 1 {
                    let job = SyncConnector {
                        job_id: *job_id,
                        dispatch_seq: dispatch_seq + 1,
                    };
                    next_jobs.push((Job::ConnectorSync(job), *run_in));
                }
            }
            Effect::Polled(record) => {
                record_poll(conn, record, topics, &mut next_jobs, &mut outbox).await?
            }
            Effect::PollDeferred {
                config_id,
                poll_seq,
                run_in,
            } => {
                let moved = sqlx::query(
                    "UPDATE connector_configs SET poll_seq = poll_seq + 1 WHERE config_id = $1 AND poll_seq = $2 AND is_active",
                )
                .bind(config_id)
                .bind(poll_seq)
                .execute(&mut *conn)
                .await?;
                if moved.rows_affected() == 1 {
                    let job = PollConnector {
                        config_id: *config_id,
                        poll_seq: poll_seq + 1,
                    };
                    next_jobs.push((Job::ConnectorPoll(job), *run_in));
                }
            }
            Effect::None | Effect::Synced(_) => {}
        }
    }
    queue::push(conn, next_jobs).await?;
    if !outbox.is_empty() {
        let mut topic = Vec::new();
        let mut keys = Vec::new();
        let mut payloads = Vec::new();
        for (t, k, p) in outbox {
            topic.push(t);
            keys.push(k);
            payloads.push(p);
        }
        sqlx::query("INSERT INTO outbox (topic, message_key, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])")
            .bind(&topic)
            .bind(&keys)
            .bind(&payloads)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn run_status(r: &SyncRecord) -> &'static str {
    match (&r.failure, &r.skipped) {
        (Some(_), _) => "FAILED",
        (None, Some(_)) => "SKIPPED",
        (None, None) => "SUCCEEDED",
    }
}

async fn record_syncs(
    conn: &mut PgConnection,
    synced: &[&SyncRecord],
    topics: &Topics,
    next_jobs: &mut Vec<(Job, Duration)>,
    outbox: &mut Vec<(String, String, Value)>,
) -> anyhow::Result<()> {
    let mut c = SyncColumns::default();
    for r in synced {
        c.run_id.push(Uuid::now_v7());
        c.config_id.push(r.job.config.config_id);
        c.store_id.push(r.job.config.store_id.clone());
        c.entity_type.push(r.entity_type.clone());
        c.records.push(r.records as i32);
        c.run_status.push(run_status(r).to_owned());
        c.error.push(
            r.failure
                .as_ref()
                .map(|f| f.reason.clone())
                .or_else(|| r.skipped.clone()),
        );
        c.job_id.push(r.job.job_id);
        c.event_type.push(r.job.event.event_type.clone());
        c.attempt.push(r.attempt_number as i32);
        c.requests.push(r.requests as i32);
        c.worker.push(r.worker.clone());
        c.started_at.push(r.started_at);
        c.finished_at.push(r.finished_at);
        c.dispatch_seq.push(r.job.dispatch_seq);
        c.job_status
            .push(job_status_name(r.decision.status).to_owned());
        c.next_retry_at.push(r.decision.next_retry_at);
        c.completed_at.push(r.decision.delivered_at);
        c.bump.push(i32::from(r.decision.next_retry_at.is_some()));
    }
    // Every attempt is logged, even one whose job moved on (re-triggered, cancelled) while it ran.
    sqlx::query(
        "INSERT INTO connector_sync_log (run_id, config_id, store_id, direction, entity_type, record_count, status, error_summary,
                                         job_id, event_type, attempt_number, requests, worker, started_at, finished_at)
         SELECT run_id, config_id, store_id, 'OUTBOUND', entity_type, record_count, status, error_summary, job_id, event_type,
                attempt_number, requests, worker, started_at, finished_at
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::uuid[], $9::text[],
                     $10::int[], $11::int[], $12::text[], $13::timestamptz[], $14::timestamptz[])
           AS i(run_id, config_id, store_id, entity_type, record_count, status, error_summary, job_id, event_type,
                attempt_number, requests, worker, started_at, finished_at)",
    )
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
    .execute(&mut *conn)
    .await?;
    let applied: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE connector_jobs j SET status = i.status, attempt_number = i.attempt_number, next_retry_at = i.next_retry_at,
                completed_at = COALESCE(i.completed_at, j.completed_at), last_error = i.error,
                dispatch_seq = j.dispatch_seq + i.bump, updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::int[])
              AS i(job_id, dispatch_seq, status, attempt_number, next_retry_at, completed_at, error, bump)
         WHERE j.job_id = i.job_id AND j.dispatch_seq = i.dispatch_seq AND j.status IN ('PENDING', 'FAILED')
         RETURNING j.job_id",
    )
    .bind(&c.job_id)
    .bind(&c.dispatch_seq)
    .bind(&c.job_status)
    .bind(&c.attempt)
    .bind(&c.next_retry_at)
    .bind(&c.completed_at)
    .bind(&c.error)
    .bind(&c.bump)
    .fetch_all(&mut *conn)
    .await?;
    for r in synced.iter().filter(|r| applied.contains(&r.job.job_id)) {
        if let Some(run_in) = r.next_run_in.filter(|_| r.decision.next_retry_at.is_some()) {
            let job = SyncConnector {
                job_id: r.job.job_id,
                dispatch_seq: r.job.dispatch_seq + 1,
            };
            next_jobs.push((Job::ConnectorSync(job), run_in));
        }
        if r.decision.status == DeliveryStatus::DeadLettered {
            let data = json!({
                "jobId": r.job.job_id, "configId": r.job.config.config_id, "connectorType": r.job.config.connector_type,
                "eventId": r.job.event.event_id, "eventType": r.job.event.event_type,
                "reason": r.failure.as_ref().map(|f| f.reason.clone()), "attempts": r.attempt_number,
            });
            let event = published_event("connector.dead_lettered", &r.job.config.store_id, data);
            outbox.push((topics.publish.clone(), r.job.job_id.to_string(), event));
        }
    }
    Ok(())
}

async fn record_poll(
    conn: &mut PgConnection,
    r: &PollRecord,
    topics: &Topics,
    next_jobs: &mut Vec<(Job, Duration)>,
    outbox: &mut Vec<(String, String, Value)>,
) -> anyhow::Result<()> {
    let config_id = r.config.config_id;
    // Only the current poll moves the chain on; a superseded one (poll now, deactivation) writes nothing, and the
    // records it saw are seen again by the poll that superseded it (its cursor was not stored).
    let next_seq: Option<i32> = sqlx::query_scalar(
        "UPDATE connector_configs SET poll_seq = poll_seq + 1, poll_cursor = COALESCE($3, poll_cursor),
                next_poll_at = $4, last_polled_at = $5
         WHERE config_id = $1 AND poll_seq = $2 AND is_active AND deleted_at IS NULL AND poll_interval_secs IS NOT NULL
         RETURNING poll_seq",
    )
    .bind(config_id)
    .bind(r.poll_seq)
    .bind(&r.cursor)
    .bind(r.next_poll_at)
    .bind(r.finished_at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(next_seq) = next_seq else {
        return Ok(());
    };
    let ids: Vec<String> = r.records.iter().map(|p| p.external_id.clone()).collect();
    let event_ids: Vec<Uuid> = r.records.iter().map(|_| Uuid::now_v7()).collect();
    let fresh: Vec<(String, Uuid)> = sqlx::query_as(
        "INSERT INTO connector_inbound_records (config_id, external_id, event_id)
         SELECT $1, * FROM unnest($2::text[], $3::uuid[])
         ON CONFLICT (config_id, external_id) DO NOTHING
         RETURNING external_id, event_id",
    )
    .bind(config_id)
    .bind(&ids)
    .bind(&event_ids)
    .fetch_all(&mut *conn)
    .await?;
    for (external_id, event_id) in &fresh {
        let Some(record) = r.records.iter().find(|p| &p.external_id == external_id) else {
            continue;
        };
        let mut event =
            published_event(&record.event_type, &r.config.store_id, record.data.clone());
        event["eventId"] = json!(event_id);
        outbox.push((
            topics.inbound.clone(),
            format!("{config_id}:{external_id}"),
            event,
        ));
    }
    let status = if r.failure.is_some() {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    sqlx::query(
        "INSERT INTO connector_sync_log (run_id, config_id, store_id, direction, entity_type, record_count, status, error_summary,
                                         poll_seq, requests, worker, started_at, finished_at)
         VALUES ($1, $2, $3, 'INBOUND', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(Uuid::now_v7())
    .bind(config_id)
    .bind(&r.config.store_id)
    .bind(&r.entity_type)
    .bind(fresh.len() as i32)
    .bind(status)
    .bind(&r.failure)
    .bind(r.poll_seq)
    .bind(r.requests as i32)
    .bind(&r.worker)
    .bind(r.started_at)
    .bind(r.finished_at)
    .execute(&mut *conn)
    .await?;
    next_jobs.push((
        Job::ConnectorPoll(PollConnector {
            config_id,
            poll_seq: next_seq,
        }),
        r.next_run_in,
    ));
    Ok(())
}

#[derive(Default)]
struct SyncColumns {
    run_id: Vec<Uuid>,
    config_id: Vec<Uuid>,
    store_id: Vec<String>,
    entity_type: Vec<String>,
    records: Vec<i32>,
    run_status: Vec<String>,
    error: Vec<Option<String>>,
    job_id: Vec<Uuid>,
    event_type: Vec<String>,
    attempt: Vec<i32>,
    requests: Vec<i32>,
    worker: Vec<String>,
    started_at: Vec<chrono::DateTime<chrono::Utc>>,
    finished_at: Vec<chrono::DateTime<chrono::Utc>>,
    dispatch_seq: Vec<i32>,
    job_status: Vec<String>,
    next_retry_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    completed_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    bump: Vec<i32>,
}
