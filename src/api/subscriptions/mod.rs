//! `/subscriptions`: create (the signing secret is shown once), list, get, update, delete, test.

mod filter;
mod rotate;
mod types;
mod validate;

pub use filter::{PayloadFilterApi, PayloadFilterResult, PayloadFilterTest};
pub use rotate::{MAX_GRACE_SECS, RotateApi, RotateSigningSecret, RotatedSigningSecret, rotate};

pub use types::{
    AutoDisabled, CreateSubscription, CreatedSubscription, Ordering, RetriggerOffer, Subscription,
    SubscriptionPage, TestSent, UpdateSubscription, UpdatedSubscription,
};
pub use validate::target_url_pattern;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use workflows::ids::{EventId, SubscriptionId};
use workflows::{EventEnvelope, EventType, StoreId, event_types};

use super::auth::WebhooksAuth;
use super::code::ProblemCode;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::{FilterText, Name};
use super::{AppState, Tag, next_page, page_limit};
use crate::db::deliveries;
use crate::db::events::{EventSource, Ingested};
use crate::db::subscriptions::{self, DeliveryOrder, NewSubscription, Patch, SubscriptionRow};
use crate::secrets::{new_signing_secret, webhook_secret_path};
use poem_openapi::types::MaybeUndefined;
use validate::{
    catalog_warnings, valid_events, valid_max_in_flight, valid_max_per_second, valid_target,
};

/// The scope every route of this module and of `deliveries` requires (checked by [`WebhooksAuth`]).
pub const SCOPE: &str = "webhooks:manage";

#[derive(ApiResponse)]
pub enum Created {
    /// Created; the body carries the signing secret, shown this once.
    #[oai(status = 201)]
    Created(Json<CreatedSubscription>),
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// The test event is ingested and its delivery queued; follow it in the delivery log.
    #[oai(status = 202)]
    Accepted(Json<TestSent>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted; its deliveries stay in the log.
    #[oai(status = 204)]
    NoContent,
}

/// 404 for a subscription id that is not one of the caller's store (another store's id looks the same).
pub(crate) fn not_found(id: SubscriptionId) -> ApiError {
    ApiError::NotFound(
        ProblemCode::SubscriptionNotFound,
        format!("subscription {id} does not exist in this store"),
    )
}

/// Why a subscription could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The insert failed (a refused value, or the database is unavailable).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The signing secret could not be stored: nothing was created.
    #[error(transparent)]
    SecretStore(#[from] crate::secrets::SecretStoreError),
}

/// Insert a (validated) subscription and store its new signing secret before the row commits, so a worker never
/// sees a subscription without its secret. Returns the row and the secret (shown to the caller once).
pub async fn create_with_secret(
    state: &AppState,
    store_id: &StoreId,
    new: &NewSubscription<'_>,
) -> Result<(SubscriptionRow, String), CreateError> {
    let secret = new_signing_secret();
    let mut tx = state.pool.begin().await?;
    let row = subscriptions::insert(&mut tx, store_id, new).await?;
    state
        .secrets
        .put(&webhook_secret_path(row.subscription_id), &secret)
        .await?;
    tx.commit().await?;
    Ok((row, secret))
}

/// The subscriptions resource.
pub struct SubscriptionsApi;

#[OpenApi(tag = "Tag::Subscriptions")]
impl SubscriptionsApi {
    /// Create a subscription; the answer carries its signing secret, shown this once.
    #[oai(path = "/subscriptions", method = "post")]
    pub async fn create(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        body: Json<CreateSubscription>,
    ) -> Result<Created, Problems<{ STORE_CALLER | JSON_BODY }>> {
        let events = valid_events(&body.events)?;
        let target = valid_target(&state, &body.target_url).await?;
        let payload_filter = match &body.payload_filter {
            Some(filter) => Some(filter::valid_payload_filter(&state, filter).await?),
            None => None,
        };
        let new = NewSubscription {
            name: &body.name,
            target_url: &target,
            events: &events,
            is_active: body.is_active.unwrap_or(true),
            max_in_flight: body
                .max_in_flight
                .map(|m| valid_max_in_flight(&state.lanes, m))
                .transpose()?,
            payload_filter: payload_filter.as_deref(),
            max_per_second: body.max_per_second.map(valid_max_per_second).transpose()?,
            order: filter::valid_ordering(&state, body.ordering.as_ref()).await?,
        };
        let (row, secret) = create_with_secret(&state, &auth.0.store_id, &new)
            .await
            .map_err(|e| match e {
                CreateError::Database(e) => ApiError::from(e),
                CreateError::SecretStore(e) => {
                    ApiError::Unavailable(ProblemCode::SecretStoreUnavailable, e.to_string())
                }
            })?;
        Ok(Created::Created(Json(CreatedSubscription {
            warnings: catalog_warnings(&row.events),
            subscription: Subscription::of(row, &state.lanes),
            signing_secret: secret,
        })))
    }

    /// List the store's subscriptions.
    #[oai(path = "/subscriptions", method = "get")]
    pub async fn list(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        cursor: Query<Option<SubscriptionId>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<SubscriptionPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let rows: Vec<Subscription> =
            subscriptions::list(&state.pool, &auth.0.store_id, cursor.0, limit + 1)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(|row| Subscription::of(row, &state.lanes))
                .collect();
        let (items, next_cursor) = next_page(rows, limit, |x: &Subscription| {
            x.subscription_id.to_string()
        });
        Ok(Json(SubscriptionPage { items, next_cursor }))
    }

    /// One subscription.
    #[oai(path = "/subscriptions/:id", method = "get")]
    pub async fn get(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
    ) -> Result<Json<Subscription>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = subscriptions::get(&state.pool, &auth.0.store_id, id.0)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| not_found(id.0))?;
        Ok(Json(Subscription::of(row, &state.lanes)))
    }

    /// Change name, target, events or activity.
    #[oai(path = "/subscriptions/:id", method = "patch")]
    pub async fn update(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        body: Json<UpdateSubscription>,
    ) -> Result<Json<UpdatedSubscription>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let target_url = match &body.target_url {
            Some(raw) => Some(valid_target(&state, raw).await?),
            None => None,
        };
        let patch = Patch {
            name: body.name.clone().map(Name::into_inner),
            target_url,
            events: body.events.as_deref().map(valid_events).transpose()?,
            is_active: body.is_active,
            max_in_flight: match body.max_in_flight {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(m) => Some(Some(valid_max_in_flight(&state.lanes, m)?)),
            },
            payload_filter: match &body.payload_filter {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(f) => {
                    Some(Some(filter::valid_payload_filter(&state, f).await?))
                }
            },
            max_per_second: match body.max_per_second {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(m) => Some(Some(valid_max_per_second(m)?)),
            },
            order: match &body.ordering {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(DeliveryOrder::Unordered),
                MaybeUndefined::Value(o) => Some(filter::valid_ordering(&state, Some(o)).await?),
            },
            now: state.clock.now(),
        };
        let updated = subscriptions::update(&state.pool, &auth.0.store_id, id.0, &patch)
            .await
            .map_err(ApiError::from)?;
        let updated = updated.ok_or_else(|| not_found(id.0))?;
        let retrigger_offer = match updated.was_failing_since {
            Some(since) => Some(RetriggerOffer {
                dead_letters: deliveries::count_dead_since(&state.pool, id.0, since)
                    .await
                    .map_err(ApiError::from)?,
                since,
                retrigger: format!(
                    "POST /subscriptions/{}/dead-letters/retrigger with {{\"since\": \"{}\"}}",
                    id.0,
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            }),
            None => None,
        };
        let row = updated.row;
        Ok(Json(UpdatedSubscription {
            warnings: catalog_warnings(&row.events),
            subscription: Subscription::of(row, &state.lanes),
            retrigger_offer,
        }))
    }

    /// Delete: no more deliveries; the delivery log keeps its history.
    #[oai(path = "/subscriptions/:id", method = "delete")]
    pub async fn delete(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
    ) -> Result<Deleted, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        if subscriptions::delete(&state.pool, &auth.0.store_id, id.0)
            .await
            .map_err(ApiError::from)?
        {
            Ok(Deleted::NoContent)
        } else {
            Err(not_found(id.0).into())
        }
    }

    /// Send a test event to this subscription through the real pipeline: `webhook.test`, or the event catalog's
    /// example `data` of `eventType` (`GET /event-types`).
    #[oai(path = "/subscriptions/:id/test", method = "post")]
    pub async fn test(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        #[oai(name = "eventType")] event_type: Query<Option<FilterText>>,
    ) -> Result<Accepted, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let event_type = event_type.0.map(FilterText::into_inner);
        let sent = send_test(&state, &auth.0.store_id, id.0, event_type.as_deref()).await?;
        Ok(Accepted::Accepted(Json(sent)))
    }
}

/// Ingest a test event for one subscription of the store (only it receives it): `webhook.test`, or the catalog's
/// example `data` of `event_type`. 404 for another store's subscription, 409 when it is inactive, 422 for a type
/// the catalog does not have.
pub async fn send_test(
    state: &AppState,
    store_id: &StoreId,
    id: SubscriptionId,
    event_type: Option<&str>,
) -> Result<TestSent, ApiError> {
    let row = subscriptions::get(&state.pool, store_id, id).await?;
    let row = row.ok_or_else(|| not_found(id))?;
    if !row.is_active {
        return Err(ApiError::Conflict(
            ProblemCode::SubscriptionInactive,
            "activate the subscription first".into(),
        ));
    }
    let (event_type, data) = match event_type {
        None => (
            EventType::parse("webhook.test").map_err(|e| ApiError::Internal(e.into()))?,
            serde_json::json!({"subscriptionId": row.subscription_id, "message": "Test delivery from ShopSTAR3"}),
        ),
        Some(name) => {
            let entry = event_types::get(name).ok_or_else(|| {
                ApiError::Invalid(
                    ProblemCode::UnknownEventType,
                    format!("{name:?} is not in the event catalog (GET /event-types)"),
                )
            })?;
            (entry.event_type.clone(), entry.example.clone())
        }
    };
    let event = EventEnvelope {
        event_id: EventId::new(),
        event_type,
        store_id: store_id.clone(),
        occurred_at: Utc::now(),
        data,
        previous_attributes: None,
    };
    let event_id = event.event_id;
    match state
        .ingestor
        .ingest_one(event, EventSource::Test, Some(row.subscription_id))
        .await?
    {
        Ingested::New { deliveries, .. } if deliveries.len() == 1 => Ok(TestSent {
            event_id,
            delivery_id: deliveries[0],
        }),
        other => Err(ApiError::Internal(anyhow::anyhow!(
            "test event fan-out gave {other:?}"
        ))),
    }
}
