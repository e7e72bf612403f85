//! The domain-event envelope the service accepts from Kafka and `POST /events`, parsed once at the edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::EventId;

/// An event type: lowercase dotted name with at least two segments, e.g. `order.placed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EventType(String);

/// A store identifier: 1–64 characters of `[A-Za-z0-9_-]` (UUIDs included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct StoreId(String);

/// Longest event type accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 100;

pub(crate) fn valid_dotted_name(s: &str, min_segments: usize) -> bool {
    let segments: Vec<&str> = s.split('.').collect();
    s.len() <= MAX_EVENT_TYPE_LEN
        && segments.len() >= min_segments
        && segments.iter().all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some('a'..='z'))
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

impl EventType {
    /// Parse an event type.
    pub fn parse(raw: &str) -> Result<Self, RejectReason> {
        if valid_dotted_name(raw, 2) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RejectReason::InvalidField {
                field: "event_type",
                detail: format!("{raw:?} is not a lowercase dotted name like order.placed"),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl StoreId {
    /// Parse a store id.
    pub fn parse(raw: &str) -> Result<Self, RejectReason> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RejectReason::InvalidField {
                field: "store_id",
                detail: "must be 1-64 characters of A-Z a-z 0-9 _ -".into(),
            })
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a message was refused (it is quarantined with this reason, or answered with a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// Larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Not JSON at all (or nested too deeply, or invalid UTF-8).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object (an array, e.g. serde's positional form of the envelope, a string, a number).
    #[error("an event must be a JSON object, not {0}")]
    NotObject(&'static str),
    /// A string (a value or a key, anywhere in the envelope) contains U+0000, which Postgres cannot store in
    /// `jsonb` or `text`. Refused rather than rewritten: the service never alters a store's data.
    #[error("a JSON string at {0} contains the NUL character (\\u0000), which cannot be stored")]
    NulCharacter(String),
    /// A required field is absent.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A field is present but invalid.
    #[error("invalid field {field}: {detail}")]
    InvalidField { field: &'static str, detail: String },
}

impl RejectReason {
    /// Stable machine-readable code, shared by quarantine rows and problem JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "event_too_large",
            Self::NotJson(_) => "event_not_json",
            Self::NotObject(_) => "event_not_object",
            Self::NulCharacter(_) => "nul_character",
            Self::MissingField(_) => "event_missing_field",
            Self::InvalidField { .. } => "event_invalid_field",
        }
    }
}

/// A parsed domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Unique id; the same id seen twice is ingested once.
    pub event_id: EventId,
    /// e.g. `order.placed`.
    pub event_type: EventType,
    /// The store the event belongs to.
    pub store_id: StoreId,
    /// When it happened on the platform (defaults to when we received it).
    pub occurred_at: DateTime<Utc>,
    /// The event's data (`data`, or `payload` as an alias).
    pub data: Value,
    /// For `*.updated` events: the attributes before the change.
    pub previous_attributes: Option<Value>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(alias = "eventId")]
    event_id: Option<Value>,
    #[serde(alias = "eventType", alias = "type")]
    event_type: Option<Value>,
    #[serde(alias = "storeId")]
    store_id: Option<Value>,
    #[serde(alias = "occurredAt")]
    occurred_at: Option<Value>,
    #[serde(alias = "payload")]
    data: Option<Value>,
    #[serde(alias = "previousAttributes")]
    previous_attributes: Option<Value>,
}

fn required_str<'a>(
    value: &'a Option<Value>,
    field: &'static str,
) -> Result<&'a str, RejectReason> {
    match value {
        None | Some(Value::Null) => Err(RejectReason::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RejectReason::InvalidField {
            field,
            detail: "must be a string".into(),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON path (`$.data.note`, `$.data.list[2]`) of the first key or string containing U+0000, if any.
/// Allocates only on a hit; recursion is bounded by serde_json's nesting limit (128).
fn nul_path(object: &serde_json::Map<String, Value>) -> Option<String> {
    fn in_value(value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(s) if s.contains('\0') => Some(Vec::new()),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                in_value(item).map(|mut path| {
                    path.push(format!("[{i}]"));
                    path
                })
            }),
            Value::Object(map) => in_object(map),
            _ => None,
        }
    }
    fn in_object(map: &serde_json::Map<String, Value>) -> Option<Vec<String>> {
        map.iter().find_map(|(key, item)| {
            let hit = if key.contains('\0') {
                Some(Vec::new())
            } else {
                in_value(item)
            };
            hit.map(|mut path| {
                path.push(format!(".{}", key.escape_debug()));
                path
            })
        })
    }
    in_object(object).map(|path| path.iter().rev().fold("$".to_owned(), |acc, seg| acc + seg))
}

impl EventEnvelope {
    /// Parse raw bytes (Kafka value or HTTP body); `received_at` fills a missing `occurred_at`.
    pub fn parse(
        bytes: &[u8],
        max_bytes: usize,
        received_at: DateTime<Utc>,
    ) -> Result<Self, RejectReason> {
        if bytes.len() > max_bytes {
            return Err(RejectReason::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| RejectReason::NotJson(e.to_string()))?;
        // Objects only: a derived `Deserialize` would also accept the struct's positional (array) form.
        let object = match value {
            Value::Object(object) => object,
            other => return Err(RejectReason::NotObject(json_kind(&other))),
        };
        if let Some(path) = nul_path(&object) {
            return Err(RejectReason::NulCharacter(path));
        }
        let raw: RawEnvelope = serde_json::from_value(Value::Object(object))
            .map_err(|e| RejectReason::NotJson(e.to_string()))?;
        let event_id = required_str(&raw.event_id, "event_id")?
            .parse::<EventId>()
            .map_err(|_| RejectReason::InvalidField {
                field: "event_id",
                detail: "must be a UUID".into(),
            })?;
        let event_type = EventType::parse(required_str(&raw.event_type, "event_type")?)?;
        let store_id = StoreId::parse(required_str(&raw.store_id, "store_id")?)?;
        let occurred_at = match &raw.occurred_at {
            None | Some(Value::Null) => received_at,
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map_err(|_| RejectReason::InvalidField {
                    field: "occurred_at",
                    detail: "must be an RFC 3339 timestamp".into(),
                })?
                .with_timezone(&Utc),
            Some(_) => {
                return Err(RejectReason::InvalidField {
                    field: "occurred_at",
                    detail: "must be a string".into(),
                });
            }
        };
        Ok(Self {
            event_id,
            event_type,
            store_id,
            occurred_at,
            data: raw.data.unwrap_or(Value::Object(Default::default())),
            previous_attributes: raw.previous_attributes.filter(|v| !v.is_null()),
        })
    }

    /// The JSON body POSTed to receivers (stored once, as the ingested event's `payload`).
    pub fn webhook_body(&self) -> Value {
        let mut body = serde_json::json!({
            "eventId": self.event_id,
            "eventType": self.event_type.as_str(),
            "storeId": self.store_id.as_str(),
            "occurredAt": self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.data,
        });
        if let (Some(prev), Some(obj)) = (&self.previous_attributes, body.as_object_mut()) {
            obj.insert("previousAttributes".into(), prev.clone());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    fn parse(s: &str) -> Result<EventEnvelope, RejectReason> {
        EventEnvelope::parse(s.as_bytes(), LIMIT, Utc::now())
    }

    #[test]
    fn a_full_envelope_parses_with_camel_or_snake_case() {
        let e = parse(r#"{"eventId":"0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f","eventType":"order.placed","storeId":"store-1","occurredAt":"2026-11-23T10:00:00Z","data":{"orderId":"o-1"}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.event_type.as_str(), "order.placed");
        assert_eq!(e.data["orderId"], "o-1");
        let snake = parse(
            r#"{"event_id":"0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f","event_type":"order.placed","store_id":"store-1","payload":{}}"#,
        );
        assert!(snake.is_ok());
    }

    #[test]
    fn bad_messages_are_rejected_with_a_reason() {
        assert_eq!(
            parse("not json").map_err(|e| e.code()),
            Err("event_not_json")
        );
        assert_eq!(parse("[1]").map_err(|e| e.code()), Err("event_not_object"));
        assert_eq!(
            parse(r#"{"event_type":"a.b","store_id":"s"}"#),
            Err(RejectReason::MissingField("event_id"))
        );
        assert_eq!(
            parse(r#"{"event_id":"nope","event_type":"a.b","store_id":"s"}"#).map_err(|e| e.code()),
            Err("event_invalid_field")
        );
        assert_eq!(
            parse(r#"{"event_id":"0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f","event_type":"a.b"}"#),
            Err(RejectReason::MissingField("store_id"))
        );
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(LIMIT));
        assert_eq!(parse(&big).map_err(|e| e.code()), Err("event_too_large"));
    }

    const ID: &str = "0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f";

    /// Catches: serde's positional form of the envelope struct being accepted as an event (issue 9, item 7).
    #[test]
    fn the_positional_array_form_of_the_envelope_is_refused() {
        let array = format!(r#"["{ID}","order.placed","store",null,{{}},null]"#);
        assert_eq!(
            parse(&array),
            Err(RejectReason::NotObject("an array")),
            "serde would map this array onto the envelope's fields"
        );
        for scalar in ["\"order.placed\"", "12", "true", "null"] {
            assert_eq!(parse(scalar).map_err(|e| e.code()), Err("event_not_object"));
        }
    }

    /// Catches: `\u0000` reaching Postgres, whose jsonb refuses it and fails the whole batch (issue 9, item 1).
    #[test]
    fn a_nul_character_anywhere_in_the_envelope_is_refused_with_its_path() {
        let cases = [
            (r#""data":{"note":"a\u0000b"}"#, "$.data.note"),
            (
                r#""data":{"list":["ok",{"x\u0000":1}]}"#,
                "$.data.list[1].x\\0",
            ),
            (
                r#""previousAttributes":{"a":["\u0000"]}"#,
                "$.previousAttributes.a[0]",
            ),
            (r#""unknownField":"\u0000""#, "$.unknownField"),
        ];
        for (field, path) in cases {
            let body =
                format!(r#"{{"eventId":"{ID}","eventType":"order.placed","storeId":"s",{field}}}"#);
            assert_eq!(
                parse(&body),
                Err(RejectReason::NulCharacter(path.to_owned())),
                "for {body}"
            );
            assert_eq!(parse(&body).map_err(|e| e.code()), Err("nul_character"));
        }
        let other_controls = format!(
            r#"{{"eventId":"{ID}","eventType":"order.placed","storeId":"s","data":{{"t":"\u0001\t"}}}}"#
        );
        assert!(parse(&other_controls).is_ok(), "only U+0000 is unstorable");
    }

    #[test]
    fn webhook_body_carries_the_envelope_fields() {
        let e = parse(r#"{"eventId":"0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f","eventType":"product.updated","storeId":"s","data":{"sku":"A"},"previousAttributes":{"price":1}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let body = e.webhook_body();
        assert_eq!(body["eventType"], "product.updated");
        assert_eq!(body["previousAttributes"]["price"], 1);
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::*;
        use super::ID;

        /// Any JSON value, with strings that sometimes contain U+0000.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<String>().prop_map(Value::String),
                "[a-c\\x00]{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(("[a-c\\x00]{0,6}", inner), 0..6)
                        .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
                ]
            })
        }

        fn has_nul(value: &Value) -> bool {
            match value {
                Value::String(s) => s.contains('\0'),
                Value::Array(items) => items.iter().any(has_nul),
                Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
                _ => false,
            }
        }

        proptest! {
            /// Arbitrary bytes never panic the parser, and whatever it accepts was a JSON object without NUL.
            #[test]
            fn arbitrary_bytes_never_panic_and_only_nul_free_objects_are_accepted(
                bytes in prop::collection::vec(any::<u8>(), 0..512),
            ) {
                if EventEnvelope::parse(&bytes, 1 << 20, Utc::now()).is_ok() {
                    let value: Value = serde_json::from_slice(&bytes).expect("accepted bytes are JSON");
                    prop_assert!(value.is_object());
                    prop_assert!(!has_nul(&value));
                }
            }

            /// A well-formed envelope whose data is arbitrary JSON is accepted exactly when it holds no NUL.
            #[test]
            fn an_envelope_is_accepted_exactly_when_no_string_holds_a_nul(data in any_json()) {
                let body = json!({"eventId": ID, "eventType": "order.placed", "storeId": "s", "data": data.clone()});
                let bytes = serde_json::to_vec(&body).expect("serialize");
                let parsed = EventEnvelope::parse(&bytes, 1 << 20, Utc::now());
                if has_nul(&body) {
                    prop_assert_eq!(parsed.map_err(|e| e.code()), Err("nul_character"));
                } else {
                    // A null `data` means "absent", which defaults to `{}`.
                    let want = if data.is_null() { json!({}) } else { data };
                    prop_assert_eq!(parsed.map(|e| e.data), Ok(want));
                }
            }

            /// Any JSON that is not an object is refused as such, never as a positional envelope.
            #[test]
            fn json_that_is_not_an_object_is_refused(value in any_json()) {
                prop_assume!(!value.is_object());
                let bytes = serde_json::to_vec(&value).expect("serialize");
                prop_assert_eq!(
                    EventEnvelope::parse(&bytes, 1 << 20, Utc::now()).map_err(|e| e.code()),
                    Err("event_not_object")
                );
            }

            /// Valid envelopes mutated byte by byte never panic and are never accepted with a NUL.
            #[test]
            fn mutated_envelopes_never_panic(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
                let mut bytes = serde_json::to_vec(&json!({
                    "eventId": ID, "eventType": "order.placed", "storeId": "s", "data": {"k": ["v", 1, null]}
                })).expect("serialize");
                let i = position.index(bytes.len());
                bytes[i] = byte;
                if let Ok(event) = EventEnvelope::parse(&bytes, 1 << 20, Utc::now()) {
                    prop_assert!(!has_nul(&event.data));
                    let _: Map<String, Value> = serde_json::from_slice(&bytes).expect("an object");
                }
            }
        }
    }
}
