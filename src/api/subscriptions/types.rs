//! The DTOs of a webhook subscription: what is created, changed and shown.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use workflows::ids::{DeliveryId, EventId, SubscriptionId};

use crate::api::types::Name;
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
}

/// The create answer: the only time the signing secret is shown.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedSubscription {
    /// The subscription as created.
    pub subscription: Subscription,
    /// `whsec_…`: store it now; it is never shown again.
    pub signing_secret: String,
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

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Self {
            subscription_id: r.subscription_id,
            store_id: r.store_id,
            name: r.name,
            target_url: r.target_url,
            events: r.events,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
