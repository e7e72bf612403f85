//! The outbox: events we publish, written with the state change that caused them, relayed to Kafka after.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// Add an event to the outbox in the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (topic, message_key, payload) VALUES ($1, $2, $3)")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// An outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Id (publish order).
    pub outbox_id: i64,
    /// Kafka topic.
    pub topic: String,
    /// Kafka key.
    pub message_key: String,
    /// JSON value.
    pub payload: Value,
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
         RETURNING outbox_id, topic, message_key, payload, created_at",
    )
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await
}

/// Mark rows published.
pub async fn mark_published(pool: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE outbox_id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// Rows for `topic`, newest last (tests and the admin API).
pub async fn by_topic(pool: &PgPool, topic: &str) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as("SELECT outbox_id, topic, message_key, payload, created_at FROM outbox WHERE topic = $1 ORDER BY outbox_id")
        .bind(topic)
        .fetch_all(pool)
        .await
}

/// Unpublished rows.
pub async fn backlog(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}
