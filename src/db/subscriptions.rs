//! Webhook subscriptions; every query is filtered by store.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use workflows::StoreId;
use workflows::ids::SubscriptionId;

use super::deliveries;

/// A live subscription, as `webhook_subscriptions` holds it (never its secret: that is in the secret store).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Assigned at insert (UUID v7).
    pub subscription_id: SubscriptionId,
    /// The store that owns it; every query filters by it.
    pub store_id: String,
    /// The display name, trimmed.
    pub name: String,
    /// The receiver's URL, as checked against the target policy when it was set.
    pub target_url: String,
    /// Normalised event patterns (`order.placed`, `order.*`, `*`), without duplicates.
    pub events: Vec<String>,
    /// Whether events are fanned out to it.
    pub is_active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "subscription_id, store_id, name, target_url, events, is_active, created_at, updated_at"
    };
}

/// Insert in the caller's transaction (the signing secret is written before it commits).
pub async fn insert(
    conn: &mut PgConnection,
    store_id: &StoreId,
    name: &str,
    target_url: &str,
    events: &[String],
    is_active: bool,
) -> Result<SubscriptionRow, sqlx::Error> {
    sqlx::query_as(concat!("INSERT INTO webhook_subscriptions (subscription_id, store_id, name, target_url, events, is_active)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ", columns!(), ""))
    .bind(SubscriptionId::new())
    .bind(store_id.as_str())
    .bind(name)
    .bind(target_url)
    .bind(events)
    .bind(is_active)
    .fetch_one(conn)
    .await
}

/// One subscription of a store.
pub async fn get(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM webhook_subscriptions WHERE store_id = $1 AND subscription_id = $2 AND deleted_at IS NULL"))
    .bind(store_id.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether the store has (or had: deleted ones keep their delivery log) this subscription.
pub async fn ever_existed(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE store_id = $1 AND subscription_id = $2)",
    )
    .bind(store_id.as_str())
    .bind(id)
    .fetch_one(pool)
    .await
}

/// A page of a store's subscriptions, oldest first, after the cursor.
pub async fn list(
    pool: &PgPool,
    store_id: &StoreId,
    after: Option<SubscriptionId>,
    limit: i64,
) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM webhook_subscriptions
         WHERE store_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR subscription_id > $2)
         ORDER BY subscription_id LIMIT $3"
    ))
    .bind(store_id.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Changes to a subscription; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// The new display name, trimmed.
    pub name: Option<String>,
    /// The new receiver URL, already checked against the target policy.
    pub target_url: Option<String>,
    /// The new normalised event patterns.
    pub events: Option<Vec<String>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// Apply a patch; deactivating stops the subscription's pending retries in the same transaction.
pub async fn update(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
    patch: &Patch,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<SubscriptionRow> = sqlx::query_as(concat!("UPDATE webhook_subscriptions SET
           name = COALESCE($3, name), target_url = COALESCE($4, target_url), events = COALESCE($5, events),
           is_active = COALESCE($6, is_active), updated_at = now()
         WHERE store_id = $1 AND subscription_id = $2 AND deleted_at IS NULL
         RETURNING ", columns!(), ""))
    .bind(store_id.as_str())
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.target_url)
    .bind(&patch.events)
    .bind(patch.is_active)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = &row
        && !row.is_active
    {
        deliveries::cancel_waiting(&mut tx, id, "subscription deactivated").await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Soft-delete: the delivery log keeps its rows; pending retries stop.
pub async fn delete(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE webhook_subscriptions SET deleted_at = now(), is_active = FALSE, updated_at = now()
         WHERE store_id = $1 AND subscription_id = $2 AND deleted_at IS NULL",
    )
    .bind(store_id.as_str())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        deliveries::cancel_waiting(&mut tx, id, "subscription deleted").await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
