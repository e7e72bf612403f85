//! The delivery log, dead letters, re-trigger and resend.

mod page;
mod types;

pub use types::{Attempt, Delivery, DeliveryPage, Restarted, RetriggerSince};

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use workflows::ids::{DeliveryId, SubscriptionId};
use workflows::{DeliveryStatus, StoreId};

use super::auth::WebhooksAuth;
use super::code::ProblemCode;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::FilterText;
use super::{AppState, Tag};
use crate::db::deliveries::{self, LogFilter, Restart};
use crate::db::subscriptions;
use page::{decode_cursor, log_filter, page, with_attempts};

/// 404 for a delivery id that is not one of the caller's store (another store's id looks the same).
fn not_found(id: DeliveryId) -> ApiError {
    ApiError::NotFound(
        ProblemCode::DeliveryNotFound,
        format!("delivery {id} does not exist in this store"),
    )
}

/// The deliveries resource.
pub struct DeliveriesApi;

#[OpenApi(tag = "Tag::Deliveries")]
impl DeliveriesApi {
    /// The store's delivery log, newest first, with every attempt.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/deliveries", method = "get")]
    pub async fn list(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        #[oai(name = "subscriptionId")] subscription_id: Query<Option<SubscriptionId>>,
        status: Query<Option<String>>,
        #[oai(name = "eventType")] event_type: Query<Option<FilterText>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<DeliveryPage>, Problems<{ STORE_CALLER }>> {
        let window = (from.0, to.0);
        let filter = log_filter(subscription_id.0, status.0, event_type.0, window, cursor.0)?;
        Ok(Json(page(&state, &auth.0.store_id, filter, limit.0).await?))
    }

    /// One subscription's delivery log (same filters as `/deliveries`).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/subscriptions/:id/deliveries", method = "get")]
    pub async fn by_subscription(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        status: Query<Option<String>>,
        #[oai(name = "eventType")] event_type: Query<Option<FilterText>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<DeliveryPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        known_subscription(&state, &auth.0.store_id, id.0).await?;
        let window = (from.0, to.0);
        let filter = log_filter(Some(id.0), status.0, event_type.0, window, cursor.0)?;
        Ok(Json(page(&state, &auth.0.store_id, filter, limit.0).await?))
    }

    /// Dead letters of the store, newest first.
    #[oai(path = "/dead-letters", method = "get")]
    pub async fn dead_letters(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<DeliveryPage>, Problems<{ STORE_CALLER }>> {
        let filter = LogFilter {
            status: Some(DeliveryStatus::DeadLettered),
            before: cursor.0.as_deref().map(decode_cursor).transpose()?,
            ..LogFilter::default()
        };
        Ok(Json(page(&state, &auth.0.store_id, filter, limit.0).await?))
    }

    /// One delivery with every attempt.
    #[oai(path = "/deliveries/:id", method = "get")]
    pub async fn get(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<DeliveryId>,
    ) -> Result<Json<Delivery>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let mut snapshot = deliveries::snapshot(&state.pool)
            .await
            .map_err(ApiError::from)?;
        let row = deliveries::get(&mut *snapshot, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| not_found(id.0))?;
        let mut items = with_attempts(&mut snapshot, vec![row]).await?;
        Ok(Json(items.remove(0)))
    }

    /// Re-trigger a dead-lettered (or cancelled) delivery: a fresh attempt now, the schedule restarts, the log keeps history.
    #[oai(path = "/deliveries/:id/retrigger", method = "post")]
    pub async fn retrigger(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<DeliveryId>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let restarted = restart_one(&state, &auth.0.store_id, id.0, Restart::DeadOrCancelled);
        Ok(Json(restarted.await?))
    }

    /// Send any finished delivery again (delivered ones too), with the same delivery id.
    #[oai(path = "/deliveries/:id/resend", method = "post")]
    pub async fn resend(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<DeliveryId>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let restarted = restart_one(&state, &auth.0.store_id, id.0, Restart::AnyFinished);
        Ok(Json(restarted.await?))
    }

    /// Re-trigger every dead letter of a subscription dead-lettered since a time.
    #[oai(path = "/subscriptions/:id/dead-letters/retrigger", method = "post")]
    pub async fn retrigger_since(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        body: Json<RetriggerSince>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        known_subscription(&state, &auth.0.store_id, id.0).await?;
        let ids = deliveries::restart(
            &state.pool,
            auth.0.store_id.as_str(),
            Restart::DeadOrCancelled,
            None,
            Some((id.0, body.since)),
        )
        .await
        .map_err(ApiError::from)?;
        let delivery_ids = ids.into_iter().collect();
        Ok(Json(Restarted { delivery_ids }))
    }
}

/// 404 unless the store has (or had) the subscription: another store's id must not look like an empty log.
pub async fn known_subscription(
    state: &AppState,
    store_id: &StoreId,
    id: SubscriptionId,
) -> Result<(), ApiError> {
    if subscriptions::ever_existed(&state.pool, store_id, id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            ProblemCode::SubscriptionNotFound,
            format!("subscription {id} does not exist in this store"),
        ))
    }
}

/// Restart one delivery of the store (`which` says from which statuses); 404 or 409 say why nothing happened.
async fn restart_one(
    state: &AppState,
    store_id: &StoreId,
    id: DeliveryId,
    which: Restart,
) -> Result<Restarted, ApiError> {
    let store = store_id.as_str();
    let ids = deliveries::restart(&state.pool, store, which, Some(id), None).await?;
    if !ids.is_empty() {
        let delivery_ids = ids.into_iter().collect();
        return Ok(Restarted { delivery_ids });
    }
    // Say precisely why nothing happened.
    match deliveries::get(&state.pool, store, id).await? {
        None => Err(not_found(id)),
        Some(row) => Err(ApiError::Conflict(
            ProblemCode::DeliveryNotRestartable,
            format!(
                "delivery is {} (or its subscription is inactive or deleted)",
                row.status
            ),
        )),
    }
}
