//! The event catalog: every event type the platform emits, with what it means, a JSON Schema (draft 2020-12) of its
//! `data` and an example. The list is the data file `workflows/event-types.json`, compiled in: a new type is one
//! more entry there (kept sorted by type), with no code change.

use std::sync::LazyLock;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::envelope::EventType;
use crate::matching::EventPattern;

/// The catalog's data file, as compiled into the binary.
pub const SOURCE: &str = include_str!("../event-types.json");

/// One event type of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogEntry {
    /// The type as it appears in the envelope's `eventType` (`order.placed`).
    #[serde(rename = "type", deserialize_with = "event_type")]
    pub event_type: EventType,
    /// When the platform emits it.
    pub description: String,
    /// JSON Schema (draft 2020-12) of the event's `data`.
    pub schema: Value,
    /// A `data` object the platform could send (valid against `schema`); the test webhook sends it.
    pub example: Value,
    /// For `*.updated` types: an example of the envelope's `previousAttributes` (old values of changed fields).
    #[serde(default)]
    pub previous_attributes: Option<Value>,
}

fn event_type<'de, D: Deserializer<'de>>(d: D) -> Result<EventType, D::Error> {
    let raw = String::deserialize(d)?;
    EventType::parse(&raw).map_err(|e| serde::de::Error::custom(e.to_string()))
}

/// Why a catalog text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not a JSON array of entries, or an entry with a missing, unknown or malformed field.
    #[error("event catalog does not parse: {0}")]
    Malformed(String),
    /// Entries must be sorted by type, each type once (a reader finds a type where it expects it).
    #[error(
        "event catalog: {0:?} is out of order or listed twice (keep the entries sorted by type)"
    )]
    Unsorted(String),
    /// A schema or an example is not a JSON object, so it cannot describe the `data` object.
    #[error("event catalog: the schema and example of {0:?} must be JSON objects")]
    NotAnObject(String),
}

/// Parse a catalog text: a JSON array of entries, sorted by type, without duplicates.
pub fn parse(text: &str) -> Result<Vec<CatalogEntry>, CatalogError> {
    let entries: Vec<CatalogEntry> =
        serde_json::from_str(text).map_err(|e| CatalogError::Malformed(e.to_string()))?;
    for pair in entries.windows(2) {
        if pair[0].event_type.as_str() >= pair[1].event_type.as_str() {
            return Err(CatalogError::Unsorted(
                pair[1].event_type.as_str().to_owned(),
            ));
        }
    }
    if let Some(e) = entries
        .iter()
        .find(|e| !e.schema.is_object() || !e.example.is_object())
    {
        return Err(CatalogError::NotAnObject(e.event_type.as_str().to_owned()));
    }
    Ok(entries)
}

static CATALOG: LazyLock<Vec<CatalogEntry>> = LazyLock::new(|| {
    // The file is compiled in and a unit test parses it, so a bad entry fails the build's tests, never a release.
    parse(SOURCE).unwrap_or_else(|e| panic!("{e}"))
});

/// Every event type of the catalog, sorted by type.
pub fn all() -> &'static [CatalogEntry] {
    &CATALOG
}

/// The catalog's entry for `event_type`, if it lists it.
pub fn get(event_type: &str) -> Option<&'static CatalogEntry> {
    let all = all();
    all.binary_search_by(|e| e.event_type.as_str().cmp(event_type))
        .ok()
        .map(|i| &all[i])
}

/// The subscription patterns (`order.placed`, `order.*`, `*`) that select no type of the catalog, in their order:
/// a subscription to them is allowed (the platform may emit types the catalog does not list yet) but likely a typo.
/// A string that is not a valid pattern selects nothing, so it is returned too.
pub fn unknown_patterns(patterns: &[String]) -> Vec<String> {
    patterns
        .iter()
        .filter(|raw| {
            EventPattern::parse(raw)
                .map(|p| !all().iter().any(|e| p.matches(&e.event_type)))
                .unwrap_or(true)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
