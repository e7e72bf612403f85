//! The loader of connector polls the worker's dispatcher runs after a claim (the outbound kinds load their rows
//! through [`super::attempts::AttemptTable::load`]), in one query per batch.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connectors::ConnectorConfig;
use serde_json::Value;
use sqlx::PgPool;
use workflows::ids::ConnectorId;

use crate::connector::handler::PollToRun;

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
