//! The DTOs of the delivery log: a delivery with its attempts, pages of them, and re-trigger answers.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use workflows::ids::{DeliveryId, EventId, SubscriptionId};

use crate::db::deliveries::{AttemptRow, DeliveryRow};

/// One attempt of a delivery.
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
    /// Why it failed (absent when delivered).
    pub error: Option<String>,
    /// When the request was sent.
    pub started_at: DateTime<Utc>,
    /// When the answer (or the failure) came.
    pub finished_at: DateTime<Utc>,
    /// Milliseconds from sending to the answer.
    pub response_time_ms: i32,
    /// The worker process that made the attempt.
    pub worker: String,
    /// The error class the statistics count a failure under (`http_503`, `timeout`, `connection_refused`, …).
    pub error_class: Option<String>,
}

/// A delivery with every attempt.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Delivery {
    /// The delivery's id, sent as `X-SS3-Delivery` (the same on every attempt and resend).
    pub delivery_id: DeliveryId,
    /// The subscription it is for.
    pub subscription_id: SubscriptionId,
    /// The store it belongs to.
    pub store_id: String,
    /// The event's type, sent as `X-SS3-Event`.
    pub event_type: String,
    /// The event it carries.
    pub event_id: EventId,
    /// PENDING, FAILED (retry scheduled), DELIVERED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// Next attempt, when FAILED.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When it was delivered (absent until then).
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status, if an answer came.
    pub http_status: Option<i32>,
    /// The last attempt's response body, truncated to delivery.response_body_limit bytes.
    pub response_body: Option<String>,
    /// The last attempt's response time in milliseconds.
    pub response_time_ms: Option<i32>,
    /// Last error, or why it was cancelled.
    pub last_error: Option<String>,
    /// The body sent.
    pub payload: serde_json::Value,
    /// When it was created (at ingest).
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// A page of the log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// Deliveries, newest first.
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
    /// The restarted deliveries; each is attempted again now.
    pub delivery_ids: Vec<DeliveryId>,
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt_number: a.attempt_number,
            status: a.outcome,
            http_status: a.http_status,
            response_body: a.response_body,
            error: a.error,
            started_at: a.started_at,
            finished_at: a.finished_at,
            response_time_ms: a.response_time_ms,
            worker: a.worker,
            error_class: a.error_class,
        }
    }
}

impl Delivery {
    /// The delivery in `r` with `attempts`.
    pub fn new(r: DeliveryRow, attempts: Vec<Attempt>) -> Self {
        Self {
            attempts,
            delivery_id: r.delivery_id,
            subscription_id: r.subscription_id,
            store_id: r.store_id,
            event_type: r.event_type,
            event_id: r.event_id,
            status: r.status,
            attempt_number: r.attempt_number,
            next_retry_at: r.next_retry_at,
            delivered_at: r.delivered_at,
            http_status: r.http_status,
            response_body: r.response_body,
            response_time_ms: r.response_time_ms,
            last_error: r.last_error,
            payload: r.event_payload.unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
