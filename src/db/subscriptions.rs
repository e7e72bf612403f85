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
    /// Its own limit of attempts in flight (its lane in `outbound_lanes`; `None`: the operator's default).
    pub max_in_flight: Option<i32>,
    /// Attempts in a row that timed out or were answered late (its lane's circuit breaker).
    pub consecutive_slow: i32,
    /// When that run of slow attempts began.
    pub slow_since: Option<DateTime<Utc>>,
    /// When the service disabled it because every attempt failed (`None`: it did not, or it was activated since).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why the service disabled it.
    pub disabled_reason: Option<String>,
    /// Since when every attempt had failed, when the service disabled it.
    pub failing_since: Option<DateTime<Utc>>,
    /// Its payload filter (an SQL/JSON path predicate, as Postgres prints it); `None`: every event of its types.
    pub payload_filter: Option<String>,
    /// Its limit of deliveries per second, across every worker; `None`: none.
    pub max_per_second: Option<f64>,
    /// Whether its deliveries are ordered (README, "Ordered delivery").
    pub ordered: bool,
    /// The path of its ordering key, as Postgres prints it; `None` with `ordered`: the whole subscription.
    pub ordering_key: Option<String>,
}

/// How a subscription's deliveries are ordered (README, "Ordered delivery").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Side by side, in any order.
    #[default]
    Unordered,
    /// One at a time, in ingest order, for the whole subscription.
    Whole,
    /// One at a time, in ingest order, per value of this SQL/JSON path (already checked by [`super::paths::check_ordering_key`]).
    ByKey(String),
}

impl DeliveryOrder {
    fn ordered(&self) -> bool {
        *self != Self::Unordered
    }

    fn key(&self) -> Option<&str> {
        match self {
            Self::ByKey(path) => Some(path),
            _ => None,
        }
    }
}

/// The columns of a [`SubscriptionRow`], from [`from!`].
macro_rules! columns {
    () => {
        "s.subscription_id, s.store_id, s.name, s.target_url, s.events, s.is_active, s.created_at, s.updated_at,
         o.max_in_flight, COALESCE(o.consecutive_slow, 0) AS consecutive_slow, o.slow_since,
         s.disabled_at, s.disabled_reason, s.failing_since, s.payload_filter::text AS payload_filter,
         s.max_per_second, s.ordered, s.ordering_key::text AS ordering_key"
    };
}

/// A subscription with its lane (settings and health; no row while both are defaults).
macro_rules! from {
    () => {
        " FROM webhook_subscriptions s LEFT JOIN outbound_lanes o ON o.lane = s.subscription_id "
    };
}

/// A new subscription.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    /// The display name, trimmed.
    pub name: &'a str,
    /// The receiver URL, already checked against the target policy.
    pub target_url: &'a str,
    /// Normalised event patterns.
    pub events: &'a [String],
    /// Whether events are fanned out to it.
    pub is_active: bool,
    /// Its own limit of attempts in flight (already within the operator's bounds); `None`: the default.
    pub max_in_flight: Option<i32>,
    /// Its payload filter, already checked by [`super::paths::check_payload_filter`].
    pub payload_filter: Option<&'a str>,
    /// Its limit of deliveries per second (already checked).
    pub max_per_second: Option<f64>,
    /// How its deliveries are ordered.
    pub order: DeliveryOrder,
}

/// Insert in the caller's transaction (the signing secret is written before it commits).
pub async fn insert(
    conn: &mut PgConnection,
    store_id: &StoreId,
    new: &NewSubscription<'_>,
) -> Result<SubscriptionRow, sqlx::Error> {
    let id: SubscriptionId = sqlx::query_scalar(
        "INSERT INTO webhook_subscriptions
           (subscription_id, store_id, name, target_url, events, is_active, payload_filter, max_per_second, ordered,
            ordering_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonpath, $8, $9, $10::jsonpath) RETURNING subscription_id",
    )
    .bind(SubscriptionId::new())
    .bind(store_id.as_str())
    .bind(new.name)
    .bind(new.target_url)
    .bind(new.events)
    .bind(new.is_active)
    .bind(new.payload_filter)
    .bind(new.max_per_second)
    .bind(new.order.ordered())
    .bind(new.order.key())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(limit) = new.max_in_flight {
        set_lane_limit(conn, id, Some(limit)).await?;
    }
    row(conn, id).await
}

/// Set (or, with `None`, clear) a subscription's own limit of attempts in flight: its lane's setting.
async fn set_lane_limit(
    conn: &mut PgConnection,
    id: SubscriptionId,
    limit: Option<i32>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbound_lanes (lane, max_in_flight) VALUES ($1, $2)
         ON CONFLICT (lane) DO UPDATE SET max_in_flight = EXCLUDED.max_in_flight, updated_at = now()",
    )
    .bind(id)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}

/// A subscription by id, in the caller's transaction.
async fn row(conn: &mut PgConnection, id: SubscriptionId) -> Result<SubscriptionRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        from!(),
        "WHERE s.subscription_id = $1"
    ))
    .bind(id)
    .fetch_one(conn)
    .await
}

/// One subscription of a store.
pub async fn get(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        from!(),
        "WHERE s.store_id = $1 AND s.subscription_id = $2 AND s.deleted_at IS NULL"
    ))
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
        from!(),
        "WHERE s.store_id = $1 AND s.deleted_at IS NULL AND ($2::uuid IS NULL OR s.subscription_id > $2)
         ORDER BY s.subscription_id LIMIT $3"
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
    /// Set (`Some(Some)`) or clear (`Some(None)`) its own limit of attempts in flight.
    pub max_in_flight: Option<Option<i32>>,
    /// Set (`Some(Some)`, already checked) or clear (`Some(None)`) its payload filter.
    pub payload_filter: Option<Option<String>>,
    /// Set (`Some(Some)`, already checked) or clear (`Some(None)`) its limit of deliveries per second.
    pub max_per_second: Option<Option<f64>>,
    /// Change how its deliveries are ordered (turning unordered sends every waiting delivery at once).
    pub order: Option<DeliveryOrder>,
    /// The service clock's time of the change: activating counts failures from then on.
    pub now: DateTime<Utc>,
}

/// A patched subscription.
#[derive(Debug)]
pub struct Updated {
    /// As changed.
    pub row: SubscriptionRow,
    /// Activated after the service had disabled it: since when every attempt had failed (its dead letters since
    /// then are worth re-triggering).
    pub was_failing_since: Option<DateTime<Utc>>,
}

/// Apply a patch; deactivating stops the subscription's pending retries in the same transaction. Activating an
/// inactive subscription clears what auto-disable recorded and counts failures from `patch.now` on.
pub async fn update(
    pool: &PgPool,
    store_id: &StoreId,
    id: SubscriptionId,
    patch: &Patch,
) -> Result<Option<Updated>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before: Option<(bool, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT is_active, failing_since FROM webhook_subscriptions
         WHERE store_id = $1 AND subscription_id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(store_id.as_str())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((was_active, failing_since)) = before else {
        return Ok(None);
    };
    let activated = patch.is_active == Some(true) && !was_active;
    let is_active: bool = sqlx::query_scalar(
        "UPDATE webhook_subscriptions SET
           name = COALESCE($3, name), target_url = COALESCE($4, target_url), events = COALESCE($5, events),
           is_active = COALESCE($6, is_active), updated_at = now(),
           failures_counted_from = CASE WHEN $7 THEN $8 ELSE failures_counted_from END,
           disabled_at = CASE WHEN $7 THEN NULL ELSE disabled_at END,
           disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END,
           failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END,
           payload_filter = CASE WHEN $9 THEN $10::jsonpath ELSE payload_filter END,
           max_per_second = CASE WHEN $11 THEN $12 ELSE max_per_second END,
           ordered = CASE WHEN $13 THEN $14 ELSE ordered END,
           ordering_key = CASE WHEN $13 THEN $15::jsonpath ELSE ordering_key END
         WHERE subscription_id = $2 AND store_id = $1
         RETURNING is_active",
    )
    .bind(store_id.as_str())
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.target_url)
    .bind(&patch.events)
    .bind(patch.is_active)
    .bind(activated)
    .bind(patch.now)
    .bind(patch.payload_filter.is_some())
    .bind(patch.payload_filter.clone().flatten())
    .bind(patch.max_per_second.is_some())
    .bind(patch.max_per_second.flatten())
    .bind(patch.order.is_some())
    .bind(patch.order.as_ref().is_some_and(DeliveryOrder::ordered))
    .bind(patch.order.as_ref().and_then(DeliveryOrder::key))
    .fetch_one(&mut *tx)
    .await?;
    let row = settle(&mut tx, id, is_active, patch).await?;
    tx.commit().await?;
    Ok(Some(Updated {
        row,
        was_failing_since: failing_since.filter(|_| activated),
    }))
}

/// What follows a patch in its transaction: deactivating cancels the waiting deliveries, turning unordered sends
/// those that waited their turn, a lane limit is set. Returns the row as changed.
async fn settle(
    tx: &mut PgConnection,
    id: SubscriptionId,
    is_active: bool,
    patch: &Patch,
) -> Result<SubscriptionRow, sqlx::Error> {
    if !is_active {
        deliveries::cancel_waiting(tx, id, "subscription deactivated").await?;
    } else if patch.order == Some(DeliveryOrder::Unordered) {
        deliveries::release_ordered(tx, id).await?;
    }
    if let Some(limit) = patch.max_in_flight {
        set_lane_limit(tx, id, limit).await?;
    }
    row(tx, id).await
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

/// Move a subscription of the store to its next signing-secret version, the previous one signing too until
/// `previous_until` (`None`: not at all). Returns the new version (`None`: no such subscription).
pub async fn next_secret_version(
    conn: &mut sqlx::PgConnection,
    store_id: &StoreId,
    id: SubscriptionId,
    previous_until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE webhook_subscriptions SET secret_version = secret_version + 1, previous_secret_until = $3,
                updated_at = now()
         WHERE store_id = $1 AND subscription_id = $2 AND deleted_at IS NULL
         RETURNING secret_version",
    )
    .bind(store_id.as_str())
    .bind(id)
    .bind(previous_until)
    .fetch_optional(conn)
    .await
}
