//! The outbox: events we publish, written with the state change that caused them (one row per topic per flush,
//! carrying that flush's events), relayed to Kafka after and deleted once relayed.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;

/// One event of an outbox row: a Kafka record to be.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxMessage {
    /// Kafka key.
    pub key: String,
    /// JSON value.
    pub value: Value,
}

/// An outbox row: the events of one flush for one topic.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Id (publish order).
    pub outbox_id: i64,
    /// Kafka topic.
    pub topic: String,
    /// Its events, in the order they were written.
    pub messages: sqlx::types::Json<Vec<OutboxMessage>>,
    /// When written.
    pub created_at: DateTime<Utc>,
}

/// Lock up to `limit` rows (every row is unpublished) but those `held_back`, oldest first, in the caller's
/// transaction (the relay's, held while it publishes them); rows another relay holds are skipped. A row lock writes
/// no new row version and no index entry.
pub async fn lock_unpublished(
    conn: &mut PgConnection,
    limit: i64,
    held_back: &[i64],
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT outbox_id, topic, messages, created_at FROM outbox WHERE outbox_id <> ALL($2)
         ORDER BY outbox_id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .bind(held_back)
    .fetch_all(conn)
    .await
}

/// Delete rows whose every event was published, in the transaction that locked them.
pub async fn delete_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM outbox WHERE outbox_id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}
