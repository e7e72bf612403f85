//! Connector configs: a store's configured connectors (never their credentials, which live in the secret store).

use chrono::{DateTime, Utc};
use jobs::connector::handler::ConnectorDeps;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use workflows::ids::ConnectorId;

use jobs::queue::attempts::cancel_waiting;

/// A config row (never credentials).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConfigRow {
    /// The connector's id; also the key of its credentials in the secret store.
    pub config_id: ConnectorId,
    /// The store that owns it; every query filters by it.
    pub store_id: String,
    /// Which adapter runs it: `amazon`, `ebay` or `google_shopping`.
    pub connector_type: String,
    /// The store admin's name for it (1-200 characters).
    pub display_name: String,
    /// False: no new jobs or polls, and waiting retries are cancelled.
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
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its configuration last changed (not its polls).
    pub updated_at: DateTime<Utc>,
}

const CONFIG_COLUMNS: &str = "config_id, store_id, connector_type, display_name, is_active, event_subscriptions, settings,
    credentials_set, credentials_updated_at, poll_interval_secs, next_poll_at, poll_cursor, last_polled_at, created_at, updated_at";

/// A new config.
#[derive(Debug, Clone)]
pub struct NewConfig<'a> {
    /// The owning store.
    pub store_id: &'a str,
    /// The adapter's type, checked against the registry before the insert.
    pub connector_type: &'a str,
    /// The store admin's name for it.
    pub display_name: &'a str,
    /// Event types (patterns) that make outbound jobs for it.
    pub events: &'a [String],
    /// Settings already parsed by the adapter (never endpoints or credentials).
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
    .bind(ConnectorId::new())
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
    config_id: ConnectorId,
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
    after: Option<ConnectorId>,
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
    /// A new name, when set.
    pub display_name: Option<String>,
    /// New event patterns, when set (replacing the old list).
    pub events: Option<Vec<String>>,
    /// Settings (replaced whole).
    pub settings: Option<Value>,
    /// `Some(None)` turns polling off.
    pub poll_interval_secs: Option<Option<i32>>,
    /// Deactivate (cancelling waiting retries) or reactivate, when set.
    pub is_active: Option<bool>,
}

/// Apply a patch to a locked config. Deactivating cancels its waiting jobs and supersedes its queued poll.
pub async fn update(
    conn: &mut PgConnection,
    store_id: &str,
    config_id: ConnectorId,
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
        cancel_waiting::<ConnectorDeps>(conn, config_id.uuid(), "connector config deactivated")
            .await?;
    }
    Ok(row)
}

/// Soft-delete a config: no more jobs or polls; the sync log keeps its history.
pub async fn delete(
    conn: &mut PgConnection,
    store_id: &str,
    config_id: ConnectorId,
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
        cancel_waiting::<ConnectorDeps>(conn, config_id.uuid(), "connector config deleted").await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Whether a deleted config still has credentials to erase: its tombstone keeps `credentials_set` until the secret
/// store confirms the erasure (see [`credentials_erased`]), so a failed erasure can be retried.
pub async fn pending_erasure(
    pool: &PgPool,
    store_id: &str,
    config_id: ConnectorId,
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
pub async fn credentials_erased(pool: &PgPool, config_id: ConnectorId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_configs SET credentials_set = '{}'
         WHERE config_id = $1 AND deleted_at IS NOT NULL",
    )
    .bind(config_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record which credential fields are now set.
pub async fn mark_credentials(
    conn: &mut PgConnection,
    config_id: ConnectorId,
    fields: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE connector_configs SET credentials_set = $2, credentials_updated_at = now(), updated_at = now() WHERE config_id = $1")
        .bind(config_id)
        .bind(fields)
        .execute(conn)
        .await?;
    Ok(())
}
