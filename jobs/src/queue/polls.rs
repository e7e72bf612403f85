//! What a connector poll found, written in the worker's flush: its sync-log row, its cursor, the records not seen
//! before (published), and the next poll of the chain.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::effects::{Writes, published_event};
use crate::Job;
use crate::connector::handler::{PollConnector, PollEffect, PollRecord};

/// Apply poll effects: a poll that ran is logged and moves the chain on; a deferred one is queued again.
pub async fn apply(
    conn: &mut PgConnection,
    effects: &[&PollEffect],
    writes: &mut Writes,
) -> anyhow::Result<()> {
    for effect in effects {
        match effect {
            PollEffect::Polled(record) => record_poll(conn, record, writes).await?,
            PollEffect::Deferred {
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
                    writes.queue(Job::ConnectorPoll(job), *run_in);
                }
            }
            PollEffect::None => {}
        }
    }
    Ok(())
}

/// Log a poll, store its cursor, publish the records not seen before, and queue the next poll. Only the current poll
/// moves the chain on; a superseded one (poll now, deactivation) writes nothing, and the records it saw are seen
/// again by the poll that superseded it (its cursor was not stored).
async fn record_poll(
    conn: &mut PgConnection,
    r: &PollRecord,
    writes: &mut Writes,
) -> anyhow::Result<()> {
    let config_id = r.config.config_id;
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
    let fresh = publish_new_records(conn, r, writes).await?;
    log_poll(conn, r, fresh).await?;
    let job = PollConnector {
        config_id,
        poll_seq: next_seq,
    };
    writes.queue(Job::ConnectorPoll(job), r.next_run_in);
    Ok(())
}

/// Publish the records of a poll not published before (deduplicated per config); returns how many were new.
async fn publish_new_records(
    conn: &mut PgConnection,
    r: &PollRecord,
    writes: &mut Writes,
) -> sqlx::Result<usize> {
    let config_id = r.config.config_id;
    let ids: Vec<&str> = r.records.iter().map(|p| p.external_id.as_str()).collect();
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
        writes.publish_event(format!("{config_id}:{external_id}"), event);
    }
    Ok(fresh.len())
}

/// Append the INBOUND sync-log row of a poll that found `fresh` new records.
async fn log_poll(conn: &mut PgConnection, r: &PollRecord, fresh: usize) -> sqlx::Result<()> {
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
    .bind(r.config.config_id)
    .bind(&r.config.store_id)
    .bind(&r.entity_type)
    .bind(fresh as i32)
    .bind(status)
    .bind(&r.failure)
    .bind(r.poll_seq)
    .bind(r.requests as i32)
    .bind(&r.worker)
    .bind(r.started_at)
    .bind(r.finished_at)
    .execute(conn)
    .await?;
    Ok(())
}
