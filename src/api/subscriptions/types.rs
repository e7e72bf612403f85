//! The DTOs of a webhook subscription: what is created, changed and shown.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use workflows::ids::{DeliveryId, EventId, SubscriptionId};
use workflows::lanes::{Lane, LaneLimits, LaneState};

use crate::api::types::{Name, OrderingKey, PayloadFilter};
use crate::db::subscriptions::SubscriptionRow;

/// A new subscription.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateSubscription {
    /// Display name (1–200 characters, no control characters; stored trimmed).
    pub name: Name,
    /// Absolute http(s) URL receiving the POSTs.
    pub target_url: String,
    /// Event names (`order.placed`), prefix wildcards (`order.*`) or `*`.
    pub events: Vec<String>,
    /// Whether events are delivered to it; default true.
    pub is_active: Option<bool>,
    /// At most this many attempts to it in flight at once, across every worker (1 to the operator's
    /// `lanes.max_in_flight`, 128 by default); absent: the operator's default (`lanes.default_in_flight`, 32).
    pub max_in_flight: Option<u32>,
    /// At most this many deliveries per second to it, across every worker (more than 0, at most 10000; a
    /// fraction such as 0.5 is one every 2 s). A backlog over it is paced, never dead-lettered. Absent: no limit.
    pub max_per_second: Option<f64>,
    /// Deliver only the events of its types that this SQL/JSON path predicate (PostgreSQL `jsonpath`) matches,
    /// evaluated on the webhook body: e.g. `$.data.total > 100 && $.data.currency == "EUR"`, or
    /// `$.data.status == "shipped" && $.previousAttributes.status != "shipped"`. Absent: every event of its types.
    pub payload_filter: Option<PayloadFilter>,
    /// Deliver in order (README, "Ordered delivery"). Absent: deliveries go side by side, in any order.
    pub ordering: Option<Ordering>,
}

/// Ordered delivery: deliveries with the same ordering key reach the receiver one at a time, in the order their
/// events were ingested. A failing delivery holds back the later ones of its key (only of its key) until it is
/// delivered or dead-lettered.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Ordering {
    /// An SQL/JSON path (PostgreSQL `jsonpath`) selecting the key in the webhook body, e.g. `$.data.orderId`:
    /// deliveries of events with the same value are ordered, those of different values go side by side (events
    /// without a value share the key `null`). Absent: one order for the whole subscription.
    pub key: Option<OrderingKey>,
}

/// Changes; absent fields are kept.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateSubscription {
    /// New name (1–200 characters, no control characters; stored trimmed).
    pub name: Option<Name>,
    /// New receiver URL (same rules as at creation).
    pub target_url: Option<String>,
    /// New event names or patterns (replaced whole; same rules as at creation).
    pub events: Option<Vec<String>>,
    /// Deactivating stops pending retries (their status becomes CANCELLED).
    pub is_active: Option<bool>,
    /// New limit of attempts in flight (same rules as at creation); `null` returns to the operator's default.
    pub max_in_flight: MaybeUndefined<u32>,
    /// New payload filter (same rules as at creation); `null` removes it.
    pub payload_filter: MaybeUndefined<PayloadFilter>,
    /// New rate limit (same rules as at creation); `null` removes it.
    pub max_per_second: MaybeUndefined<f64>,
    /// New ordering (same rules as at creation), for events ingested from now on; `null` makes it unordered, and
    /// every delivery still waiting its turn is sent at once.
    pub ordering: MaybeUndefined<Ordering>,
}

/// A subscription (never its secret).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription's id (`{id}` of its routes).
    pub subscription_id: SubscriptionId,
    /// The store that owns it.
    pub store_id: String,
    /// The display name, as stored (trimmed).
    pub name: String,
    /// The receiver's URL.
    pub target_url: String,
    /// Normalised event names and patterns, without duplicates.
    pub events: Vec<String>,
    /// Whether events are delivered to it.
    pub is_active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its own limit of attempts in flight; absent: the operator's default.
    pub max_in_flight: Option<u32>,
    /// How its deliveries are paced now: the limit in force and the slow-receiver circuit breaker.
    pub delivery_lane: DeliveryLane,
    /// Present when the service disabled it because every attempt had failed (README, "Auto-disable"); cleared by
    /// activating it again.
    pub auto_disabled: Option<AutoDisabled>,
    /// Its payload filter, as Postgres normalised it; absent: every event of its types.
    pub payload_filter: Option<String>,
    /// Its limit of deliveries per second; absent: none.
    pub max_per_second: Option<f64>,
    /// How its deliveries are ordered; absent: not at all.
    pub ordering: Option<Ordering>,
}

/// Why and when the service disabled a subscription.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AutoDisabled {
    /// When it was disabled.
    pub at: DateTime<Utc>,
    /// Since when every attempt had failed (start of the hour or day of the first failure counted).
    pub failing_since: DateTime<Utc>,
    /// The reason, in words.
    pub reason: String,
}

/// Offered when a disabled subscription is activated: its dead letters since it began failing, and how to
/// re-trigger them all.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RetriggerOffer {
    /// Dead letters since `since`.
    pub dead_letters: i64,
    /// Since when every attempt had failed.
    pub since: DateTime<Utc>,
    /// The call that re-triggers them: `POST /subscriptions/{id}/dead-letters/retrigger` with `{"since": …}`.
    pub retrigger: String,
}

/// A subscription's delivery lane: attempts to it in flight at once across every worker, and whether its receiver
/// answers in time.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryLane {
    /// `healthy`, or `slow`: its last attempts timed out or were answered late, so it has one attempt in flight
    /// at a time until one is answered in time again (waiting never counts as an attempt).
    pub state: LaneState,
    /// Attempts it may have in flight now (its own limit or the default; 1 while slow).
    pub in_flight_limit: u32,
    /// Attempts in a row that timed out or were answered late.
    pub consecutive_slow: u32,
    /// When that run of slow attempts began; absent while its last attempt was answered in time.
    pub slow_since: Option<DateTime<Utc>>,
}

/// The create answer: the only time the signing secret is shown.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedSubscription {
    /// The subscription as created.
    pub subscription: Subscription,
    /// `whsec_…`: store it now; it is never shown again.
    pub signing_secret: String,
    /// Allowed but likely mistakes: each of `events` that selects no type of the event catalog
    /// (`GET /event-types`). Empty when every pattern selects a catalog type.
    pub warnings: Vec<String>,
}

/// The update answer: the subscription as changed, and what looks wrong in it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdatedSubscription {
    /// The subscription as changed.
    #[oai(flatten)]
    pub subscription: Subscription,
    /// Allowed but likely mistakes: each of `events` that selects no type of the event catalog
    /// (`GET /event-types`). Empty when every pattern selects a catalog type.
    pub warnings: Vec<String>,
    /// Present when this change activated a subscription the service had disabled.
    pub retrigger_offer: Option<RetriggerOffer>,
}

/// A page of subscriptions.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SubscriptionPage {
    /// Subscriptions, oldest first.
    pub items: Vec<Subscription>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What `POST /subscriptions/{id}/test` queued.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TestSent {
    /// The synthetic `webhook.test` event.
    pub event_id: EventId,
    /// Its delivery to this subscription (follow it in the delivery log).
    pub delivery_id: DeliveryId,
}

impl Subscription {
    /// The subscription as shown, its lane judged by the operator's `limits`.
    pub fn of(r: SubscriptionRow, limits: &LaneLimits) -> Self {
        let lane = Lane {
            own_limit: r.max_in_flight.and_then(|m| u32::try_from(m).ok()),
            consecutive_slow: u32::try_from(r.consecutive_slow).unwrap_or(0),
        };
        Self {
            subscription_id: r.subscription_id,
            store_id: r.store_id,
            name: r.name,
            target_url: r.target_url,
            events: r.events,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
            max_in_flight: lane.own_limit,
            delivery_lane: DeliveryLane {
                state: limits.state(lane),
                in_flight_limit: limits.in_flight_limit(lane),
                consecutive_slow: lane.consecutive_slow,
                slow_since: r.slow_since,
            },
            auto_disabled: match (r.disabled_at, r.failing_since, r.disabled_reason) {
                (Some(at), Some(failing_since), Some(reason)) => Some(AutoDisabled {
                    at,
                    failing_since,
                    reason,
                }),
                _ => None,
            },
            payload_filter: r.payload_filter,
            max_per_second: r.max_per_second,
            ordering: r.ordered.then(|| Ordering {
                key: r.ordering_key.map(OrderingKey::stored),
            }),
        }
    }
}
