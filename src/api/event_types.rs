//! `GET /event-types`: the event catalog (`workflows::event_types`), so subscribers and the admin panel know what
//! each event's `data` looks like before the first one arrives.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use workflows::event_types::{self, CatalogEntry};

use super::Tag;
use super::auth::CallerAuth;
use super::problem::Problems;
use super::problem::can::*;

/// One event type the platform emits.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct EventTypeInfo {
    /// The envelope's `eventType` (`order.placed`); subscriptions name it, or select it with `order.*` or `*`.
    #[oai(rename = "type")]
    pub event_type: String,
    /// When the platform emits it.
    pub description: String,
    /// JSON Schema (draft 2020-12) of the event's `data`.
    pub schema: Value,
    /// An example `data` object, valid against `schema`.
    pub example: Value,
    /// For `*.updated` types: an example of the envelope's `previousAttributes` (old values of the changed fields).
    pub previous_attributes: Option<Value>,
}

impl From<&CatalogEntry> for EventTypeInfo {
    fn from(e: &CatalogEntry) -> Self {
        Self {
            event_type: e.event_type.as_str().to_owned(),
            description: e.description.clone(),
            schema: e.schema.clone(),
            example: e.example.clone(),
            previous_attributes: e.previous_attributes.clone(),
        }
    }
}

/// The event catalog.
pub struct EventTypesApi;

#[OpenApi(tag = "Tag::EventTypes")]
impl EventTypesApi {
    /// Every event type the platform emits, sorted by type, each with its `data` schema and an example.
    #[oai(path = "/event-types", method = "get")]
    async fn list(
        &self,
        _auth: CallerAuth,
    ) -> Result<Json<Vec<EventTypeInfo>>, Problems<{ ANY_CALLER }>> {
        Ok(Json(event_types::all().iter().map(Into::into).collect()))
    }
}
