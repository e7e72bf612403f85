//! The outbox: events we publish, written with the state change that caused them (one row per topic per flush,
//! carrying that flush's events), relayed to Kafka after.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

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

/// Claim up to `limit` unpublished rows for `lease` seconds (no lock is held while publishing).
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    lease_secs: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2)
         WHERE outbox_id IN (
             SELECT outbox_id FROM outbox
             WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
             ORDER BY outbox_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING outbox_id, topic, messages, created_at",
    )
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await
}

/// Mark rows published (every one of their events was).
pub async fn mark_published(pool: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE outbox_id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}
