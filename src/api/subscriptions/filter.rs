//! Payload filters: a subscription's SQL/JSON path predicate over the webhook body (README, "Payload filters"),
//! checked by Postgres at creation, evaluated by Postgres in the fan-out statement, and tried out on an example
//! event with `POST /subscriptions/filter-test`. Ordering keys, SQL/JSON paths too, are checked here as well.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use crate::api::auth::WebhooksAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::types::{PayloadFilter, nul_at};
use crate::api::{AppState, Tag};

use super::Ordering;
use crate::db::paths;
use crate::db::subscriptions::DeliveryOrder;

/// A payload filter to try on an example event.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PayloadFilterTest {
    /// The filter, as a subscription would carry it (e.g. `$.data.total > 100`).
    pub payload_filter: PayloadFilter,
    /// The example event, as a receiver gets it: `eventId`, `eventType`, `storeId`, `occurredAt`, `data` and, for
    /// updates, `previousAttributes` (the fields the filter may test).
    pub event: Value,
}

/// Whether the filter matches the example.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PayloadFilterResult {
    /// True: a subscription with this filter gets the event (if its event types select it).
    pub matches: bool,
}

/// The payload filter to store, once Postgres has accepted it as a predicate.
pub(super) async fn valid_payload_filter(
    state: &AppState,
    filter: &PayloadFilter,
) -> Result<String, ApiError> {
    match paths::check_payload_filter(&state.pool, filter).await? {
        None => Ok(filter.to_string()),
        Some(why) => Err(ApiError::Invalid(
            ProblemCode::InvalidPayloadFilter,
            format!("payloadFilter is not an SQL/JSON path predicate: {why}"),
        )),
    }
}

/// The ordering to store (`None`: unordered), once Postgres has accepted its key as an SQL/JSON path.
pub(super) async fn valid_ordering(
    state: &AppState,
    ordering: Option<&Ordering>,
) -> Result<DeliveryOrder, ApiError> {
    let Some(ordering) = ordering else {
        return Ok(DeliveryOrder::Unordered);
    };
    let Some(key) = &ordering.key else {
        return Ok(DeliveryOrder::Whole);
    };
    match paths::check_ordering_key(&state.pool, key).await? {
        None => Ok(DeliveryOrder::ByKey(key.to_string())),
        Some(why) => Err(ApiError::Invalid(
            ProblemCode::InvalidOrderingKey,
            format!("ordering.key is not an SQL/JSON path: {why}"),
        )),
    }
}

/// Trying payload filters out.
pub struct PayloadFilterApi;

#[OpenApi(tag = "Tag::Subscriptions")]
impl PayloadFilterApi {
    /// Evaluate a payload filter on an example event, exactly as delivery would.
    #[oai(path = "/subscriptions/filter-test", method = "post")]
    pub async fn filter_test(
        &self,
        _auth: WebhooksAuth,
        state: Data<&AppState>,
        body: Json<PayloadFilterTest>,
    ) -> Result<Json<PayloadFilterResult>, Problems<{ STORE_CALLER | JSON_BODY }>> {
        if !body.event.is_object() {
            return Err(ApiError::Invalid(
                ProblemCode::EventNotObject,
                "event must be a JSON object".into(),
            ))?;
        }
        if let Some(path) = nul_at(&body.event, "event") {
            return Err(ApiError::Invalid(
                ProblemCode::NulCharacter,
                format!("{path} contains a NUL character"),
            ))?;
        }
        let filter = valid_payload_filter(&state, &body.payload_filter).await?;
        let matches = paths::payload_filter_matches(&state.pool, &filter, &body.event)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(PayloadFilterResult { matches }))
    }
}
