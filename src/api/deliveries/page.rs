//! Pages of the delivery log: the opaque cursor, the status filter, and attaching each delivery's attempts.

use std::collections::HashMap;

use sqlx::PgConnection;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use workflows::ids::{DeliveryId, SubscriptionId};
use workflows::{DeliveryStatus, StoreId};

use super::types::{Attempt, Delivery, DeliveryPage};
use crate::api::code::ProblemCode;
use crate::api::problem::ApiError;
use crate::api::types::FilterText;
use crate::api::{AppState, page_limit};
use crate::db::deliveries::{self, DeliveryRow, LogFilter};

/// The cursor after `row`: its creation time and id, base64url-encoded (the log is ordered by both).
fn encode_cursor(row: &DeliveryRow) -> String {
    B64.encode(format!(
        "{}|{}",
        row.created_at.timestamp_micros(),
        row.delivery_id
    ))
}

/// The position a cursor of [`encode_cursor`] names; 422 `invalid_cursor` for anything else.
pub(super) fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, DeliveryId), ApiError> {
    let bad = || {
        ApiError::Invalid(
            ProblemCode::InvalidCursor,
            "cursor is not one this API returned".into(),
        )
    };
    let text = String::from_utf8(B64.decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// The status filter; 422 `invalid_status` naming the valid ones.
pub(super) fn parse_status(raw: Option<String>) -> Result<Option<DeliveryStatus>, ApiError> {
    raw.map(|s| {
        DeliveryStatus::parse(&s).ok_or_else(|| {
            let valid: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::Invalid(
                ProblemCode::InvalidStatus,
                format!("status must be one of {}", valid.join(", ")),
            )
        })
    })
    .transpose()
}

/// The filter of the delivery log's query parameters (shared by `/deliveries` and a subscription's log); 422
/// for a status or cursor that does not parse.
pub(super) fn log_filter(
    subscription_id: Option<SubscriptionId>,
    status: Option<String>,
    event_type: Option<FilterText>,
    (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    cursor: Option<String>,
) -> Result<LogFilter, ApiError> {
    Ok(LogFilter {
        subscription_id,
        status: parse_status(status)?,
        event_type: event_type.map(FilterText::into_inner),
        from,
        to,
        before: cursor.as_deref().map(decode_cursor).transpose()?,
    })
}

/// The deliveries in `rows`, each with its attempts (one query for all of them), read in the rows' `snapshot`.
pub(super) async fn with_attempts(
    snapshot: &mut PgConnection,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<Delivery>, ApiError> {
    let ids: Vec<_> = rows.iter().map(|r| r.delivery_id).collect();
    let mut by_delivery: HashMap<DeliveryId, Vec<Attempt>> = HashMap::new();
    for a in deliveries::attempts(snapshot, &ids).await? {
        by_delivery.entry(a.delivery_id).or_default().push(a.into());
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let attempts = by_delivery.remove(&r.delivery_id).unwrap_or_default();
            Delivery::new(r, attempts)
        })
        .collect())
}

/// One page of the store's log under `filter`, newest first.
pub(super) async fn page(
    state: &AppState,
    store_id: &StoreId,
    filter: LogFilter,
    limit: Option<i64>,
) -> Result<DeliveryPage, ApiError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidDateRange,
            "from must be before to".into(),
        ));
    }
    let limit = page_limit(limit);
    let mut snapshot = deliveries::snapshot(&state.pool).await?;
    let mut rows = deliveries::list(&mut *snapshot, store_id.as_str(), &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(encode_cursor)
    } else {
        None
    };
    Ok(DeliveryPage {
        items: with_attempts(&mut snapshot, rows).await?,
        next_cursor,
    })
}
