//! The delivery log, dead letters, re-trigger and resend.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use workflows::DeliveryStatus;
use workflows::ids::DeliveryId;

use super::auth::WebhooksAuth;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::FilterText;
use super::{AppState, Tag, page_limit};
use crate::db::deliveries::{self, AttemptRow, DeliveryRow, LogFilter, Restart};
use crate::db::subscriptions;

/// One attempt.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Attempt {
    /// Position in its schedule (1–5; a re-trigger starts again at 1).
    pub attempt_number: i32,
    /// DELIVERED or FAILED.
    pub status: String,
    /// HTTP status, if an answer came.
    pub http_status: Option<i32>,
    /// Response body, truncated to delivery.response_body_limit bytes.
    pub response_body: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// Response time.
    pub response_time_ms: i32,
}

/// A delivery with every attempt.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Delivery {
    /// Id, sent as `X-SS3-Delivery`.
    pub delivery_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Event type.
    pub event_type: String,
    /// Event id.
    pub event_id: Uuid,
    /// PENDING, FAILED (retry scheduled), DELIVERED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// Next attempt, when FAILED.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Last HTTP status.
    pub http_status: Option<i32>,
    /// Last response body.
    pub response_body: Option<String>,
    /// Last response time.
    pub response_time_ms: Option<i32>,
    /// Last error, or why it was cancelled.
    pub last_error: Option<String>,
    /// The body sent.
    pub payload: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// A page of the log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for older items; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Bulk re-trigger request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RetriggerSince {
    /// Re-trigger dead letters dead-lettered at or after this time.
    pub since: DateTime<Utc>,
}

/// Which deliveries were restarted.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Restarted {
    /// Their ids.
    pub delivery_ids: Vec<Uuid>,
}

fn encode_cursor(row: &DeliveryRow) -> String {
    B64.encode(format!(
        "{}|{}",
        row.created_at.timestamp_micros(),
        row.delivery_id
    ))
}

fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || {
        ApiError::Invalid(
            "invalid_cursor",
            "cursor is not one this API returned".into(),
        )
    };
    let text = String::from_utf8(B64.decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

fn parse_status(raw: Option<String>) -> Result<Option<DeliveryStatus>, ApiError> {
    raw.map(|s| {
        DeliveryStatus::parse(&s).ok_or_else(|| {
            let valid: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::Invalid(
                "invalid_status",
                format!("status must be one of {}", valid.join(", ")),
            )
        })
    })
    .transpose()
}

fn attempt(a: AttemptRow) -> Attempt {
    Attempt {
        attempt_number: a.attempt_number,
        status: a.outcome,
        http_status: a.http_status,
        response_body: a.response_body,
        error: a.error,
        started_at: a.started_at,
        finished_at: a.finished_at,
        response_time_ms: a.response_time_ms,
    }
}

async fn with_attempts(
    state: &AppState,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<Delivery>, ApiError> {
    let ids: Vec<DeliveryId> = rows.iter().map(|r| r.delivery_id).collect();
    let mut by_delivery: HashMap<DeliveryId, Vec<Attempt>> = HashMap::new();
    for a in deliveries::attempts(&state.pool, &ids).await? {
        by_delivery
            .entry(a.delivery_id)
            .or_default()
            .push(attempt(a));
    }
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            attempts: by_delivery.remove(&r.delivery_id).unwrap_or_default(),
            delivery_id: r.delivery_id.into(),
            subscription_id: r.subscription_id.into(),
            store_id: r.store_id,
            event_type: r.event_type,
            event_id: r.event_id.into(),
            status: r.status,
            attempt_number: r.attempt_number,
            next_retry_at: r.next_retry_at,
            delivered_at: r.delivered_at,
            http_status: r.http_status,
            response_body: r.response_body,
            response_time_ms: r.response_time_ms,
            last_error: r.last_error,
            payload: r.event_payload,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

async fn page(
    state: &AppState,
    store_id: &str,
    filter: LogFilter,
    limit: Option<i64>,
) -> Result<DeliveryPage, ApiError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(ApiError::Invalid(
            "invalid_date_range",
            "from must be before to".into(),
        ));
    }
    let limit = page_limit(limit);
    let mut rows = deliveries::list(&state.pool, store_id, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(encode_cursor)
    } else {
        None
    };
    Ok(DeliveryPage {
        items: with_attempts(state, rows).await?,
        next_cursor,
    })
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(
        "delivery_not_found",
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
    async fn list(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        #[oai(name = "subscriptionId")] subscription_id: Query<Option<Uuid>>,
        status: Query<Option<String>>,
        #[oai(name = "eventType")] event_type: Query<Option<FilterText>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<DeliveryPage>, Problems<{ STORE_CALLER }>> {
        let filter = LogFilter {
            subscription_id: subscription_id.0,
            status: parse_status(status.0)?,
            event_type: event_type.0.map(FilterText::into_inner),
            from: from.0,
            to: to.0,
            before: cursor.0.as_deref().map(decode_cursor).transpose()?,
        };
        Ok(Json(
            page(&state, auth.0.store_id.as_str(), filter, limit.0).await?,
        ))
    }

    /// One subscription's delivery log (same filters as `/deliveries`).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/subscriptions/:id/deliveries", method = "get")]
    async fn by_subscription(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        status: Query<Option<String>>,
        #[oai(name = "eventType")] event_type: Query<Option<FilterText>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<DeliveryPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        known_subscription(&state, auth.0.store_id.as_str(), id.0).await?;
        let filter = LogFilter {
            subscription_id: Some(id.0),
            status: parse_status(status.0)?,
            event_type: event_type.0.map(FilterText::into_inner),
            from: from.0,
            to: to.0,
            before: cursor.0.as_deref().map(decode_cursor).transpose()?,
        };
        Ok(Json(
            page(&state, auth.0.store_id.as_str(), filter, limit.0).await?,
        ))
    }

    /// Dead letters of the store, newest first.
    #[oai(path = "/dead-letters", method = "get")]
    async fn dead_letters(
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
        Ok(Json(
            page(&state, auth.0.store_id.as_str(), filter, limit.0).await?,
        ))
    }

    /// One delivery with every attempt.
    #[oai(path = "/deliveries/:id", method = "get")]
    async fn get(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Delivery>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = deliveries::get(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| not_found(id.0))?;
        let mut items = with_attempts(&state, vec![row]).await?;
        Ok(Json(items.remove(0)))
    }

    /// Re-trigger a dead-lettered (or cancelled) delivery: a fresh attempt now, the schedule restarts, the log keeps history.
    #[oai(path = "/deliveries/:id/retrigger", method = "post")]
    async fn retrigger(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        restart_one(
            &state,
            auth.0.store_id.as_str(),
            id.0,
            Restart::DeadOrCancelled,
        )
        .await
        .map(Json)
        .map_err(Into::into)
    }

    /// Send any finished delivery again (delivered ones too), with the same delivery id.
    #[oai(path = "/deliveries/:id/resend", method = "post")]
    async fn resend(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        restart_one(&state, auth.0.store_id.as_str(), id.0, Restart::AnyFinished)
            .await
            .map(Json)
            .map_err(Into::into)
    }

    /// Re-trigger every dead letter of a subscription dead-lettered since a time.
    #[oai(path = "/subscriptions/:id/dead-letters/retrigger", method = "post")]
    async fn retrigger_since(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<RetriggerSince>,
    ) -> Result<Json<Restarted>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        known_subscription(&state, auth.0.store_id.as_str(), id.0).await?;
        let ids = deliveries::restart(
            &state.pool,
            auth.0.store_id.as_str(),
            Restart::DeadOrCancelled,
            None,
            Some((id.0.into(), body.since)),
        )
        .await
        .map_err(ApiError::from)?;
        let delivery_ids = ids.into_iter().map(Into::into).collect();
        Ok(Json(Restarted { delivery_ids }))
    }
}

/// 404 unless the store has (or had) the subscription: another store's id must not look like an empty log.
async fn known_subscription(state: &AppState, store_id: &str, id: Uuid) -> Result<(), ApiError> {
    if subscriptions::ever_existed(&state.pool, store_id, id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "subscription_not_found",
            format!("subscription {id} does not exist in this store"),
        ))
    }
}

async fn restart_one(
    state: &AppState,
    store_id: &str,
    id: Uuid,
    which: Restart,
) -> Result<Restarted, ApiError> {
    let ids = deliveries::restart(&state.pool, store_id, which, Some(id.into()), None).await?;
    if !ids.is_empty() {
        let delivery_ids = ids.into_iter().map(Into::into).collect();
        return Ok(Restarted { delivery_ids });
    }
    // Say precisely why nothing happened.
    match deliveries::get(&state.pool, store_id, id).await? {
        None => Err(not_found(id)),
        Some(row) => Err(ApiError::Conflict(
            "delivery_not_restartable",
            format!(
                "delivery is {} (or its subscription is inactive or deleted)",
                row.status
            ),
        )),
    }
}
