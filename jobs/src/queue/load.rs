//! The loaders the worker's dispatcher runs after a claim: each kind's rows (with what they refer to) for a batch
//! of jobs, in one query per kind.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connectors::{ConnectorConfig, ConnectorEvent};
use serde_json::Value;
use sqlx::PgPool;
use workflows::DeliveryStatus;
use workflows::attempt::AttemptState;
use workflows::connector::parse_job_status;
use workflows::ids::{ConnectorId, ConnectorJobId, DeliveryId, EventId, SubscriptionId};

use crate::connector::handler::{ConnectorJobToRun, PollToRun};
use crate::ports::DeliveryToSend;

#[derive(sqlx::FromRow)]
struct SendRow {
    delivery_id: DeliveryId,
    subscription_id: SubscriptionId,
    store_id: String,
    event_type: String,
    event_payload: Value,
    status: String,
    attempt_number: i32,
    next_retry_at: Option<DateTime<Utc>>,
    dispatch_seq: i32,
    target_url: String,
    subscription_active: bool,
}

/// Load the deliveries a batch of jobs refers to, with their subscriptions, in one query.
pub async fn load_for_send(
    pool: &PgPool,
    ids: &[DeliveryId],
) -> anyhow::Result<HashMap<DeliveryId, DeliveryToSend>> {
    let rows: Vec<SendRow> = sqlx::query_as(
        "SELECT d.delivery_id, d.subscription_id, d.store_id, d.event_type, d.event_payload, d.status,
                d.attempt_number, d.next_retry_at, d.dispatch_seq, s.target_url,
                (s.is_active AND s.deleted_at IS NULL) AS subscription_active
         FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
         WHERE d.delivery_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let status = DeliveryStatus::parse(&r.status).ok_or_else(|| {
                anyhow::anyhow!("unknown delivery status {:?} in the database", r.status)
            })?;
            Ok((
                r.delivery_id,
                DeliveryToSend {
                    delivery_id: r.delivery_id,
                    subscription_id: r.subscription_id,
                    store_id: r.store_id,
                    event_type: r.event_type,
                    payload: r.event_payload,
                    state: AttemptState {
                        status,
                        attempt_number: r.attempt_number.max(0) as u32,
                        next_retry_at: r.next_retry_at,
                        dispatch_seq: r.dispatch_seq,
                    },
                    target_url: r.target_url,
                    subscription_active: r.subscription_active,
                },
            ))
        })
        .collect()
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
    event_payload: Value,
}

/// Load connector jobs (with their configs) for the worker, in one query; rows with an unknown status are left out.
pub async fn load_jobs(
    pool: &PgPool,
    ids: &[ConnectorJobId],
) -> Result<HashMap<ConnectorJobId, ConnectorJobToRun>, sqlx::Error> {
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
                state: AttemptState {
                    status,
                    attempt_number: r.attempt_number.max(0) as u32,
                    next_retry_at: r.next_retry_at,
                    dispatch_seq: r.dispatch_seq,
                },
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
    config_id: ConnectorId,
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
    config_ids: &[ConnectorId],
) -> Result<HashMap<ConnectorId, PollToRun>, sqlx::Error> {
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
