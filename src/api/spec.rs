//! The OpenAPI document served at `/openapi.json` and printed by `integration-service openapi`.
//!
//! poem-openapi derives it from the handlers and DTOs. This module adds the facts the derive can state only by
//! enforcing them itself with a generic `400 invalid_request`, where the handlers (and the newtypes they parse
//! into) enforce them with stable `422` codes (`invalid_name`, `invalid_event_type`, `invalid_scope`, …): lengths,
//! patterns and enums. It also marks every optional property nullable (the server writes `null` and reads `null` as
//! absent), declares `X-SS3-Store-Id` on store-scoped routes, and gives `POST /events` the envelope schema (the
//! handler parses raw JSON with the same parser as Kafka ingest). Schemathesis (`scripts/schemathesis.sh`, in CI)
//! sends data valid and invalid under this document, so a fact here that drifts from the code fails CI.

use serde_json::{Map, Value, json};
use workflows::DeliveryStatus;
use workflows::connector::job_status_name;
use workflows::credentials::SCOPES;

use super::subscriptions::target_url_pattern;

/// A store id: 1–64 characters of `[A-Za-z0-9_-]` (`workflows::StoreId`).
const STORE_ID: &str = "^[A-Za-z0-9_-]{1,64}$";
/// An event type (`workflows::EventType`): lowercase dotted segments, at least two.
const EVENT_TYPE: &str = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$";
/// A prefix wildcard (`workflows::EventPattern`): a dotted prefix of at most 100 characters, then `.*`.
const PREFIX_WILDCARD: &str = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*\\.\\*$";

/// The whole document.
pub fn document() -> Value {
    let mut doc: Value =
        serde_json::from_str(&super::openapi().spec()).unwrap_or_else(|_| json!({}));
    // The server answers a missing grant type with RFC 6749's `invalid_request`, so it is required.
    if let Some(required) = doc.pointer_mut("/components/schemas/TokenRequest/required") {
        *required = json!(["grant_type"]);
    } else if let Some(Value::Object(token)) = doc.pointer_mut("/components/schemas/TokenRequest") {
        token.insert("required".into(), json!(["grant_type"]));
    }
    nullable_optionals(&mut doc);
    for (schema, property, fact) in property_facts() {
        if let Some(p) = doc.pointer_mut(&format!(
            "/components/schemas/{schema}/properties/{property}"
        )) {
            merge(p, fact);
        }
    }
    for (path, method, name, fact) in parameter_facts() {
        if let Some(params) = doc
            .pointer_mut(&format!("/paths/{}/{method}/parameters", escape(path)))
            .and_then(Value::as_array_mut)
        {
            for p in params.iter_mut().filter(|p| p["name"] == name) {
                merge(&mut p["schema"], fact.clone());
            }
        }
    }
    declare_store_header(&mut doc);
    event_envelope(&mut doc);
    integer_bounds(&mut doc);
    links(&mut doc);
    doc
}

/// OpenAPI links from each create to the routes of the created resource, so a client (and schemathesis's stateful
/// phase) knows where the `{id}` of `/subscriptions/{id}/…`, `/credentials/{id}/…` and `/connectors/{id}/…` comes from.
fn links(doc: &mut Value) {
    for (create, id_at, prefix) in [
        (
            "/subscriptions",
            "/subscription/subscriptionId",
            "/subscriptions/{id}",
        ),
        (
            "/credentials",
            "/credential/credentialId",
            "/credentials/{id}",
        ),
        ("/connectors", "/configId", "/connectors/{id}"),
    ] {
        let mut links = Map::new();
        let targets = doc["paths"].as_object().into_iter().flatten();
        for (path, item) in
            targets.filter(|(p, _)| p.starts_with(prefix) && p.matches('{').count() == 1)
        {
            for method in item.as_object().into_iter().flat_map(Map::keys) {
                let name = format!("{method}{}", path.replace(['/', '{', '}', '-'], "_"));
                links.insert(
                    name,
                    json!({
                        "operationRef": format!("#/paths/{}/{method}", escape(path)),
                        "parameters": { "id": format!("$response.body#{id_at}") },
                    }),
                );
            }
        }
        if let Some(Value::Object(created)) =
            doc.pointer_mut(&format!("/paths/{}/post/responses/201", escape(create)))
        {
            created.insert("links".into(), Value::Object(links));
        }
    }
}

/// The range of each fixed-width integer: a value outside it fails to parse (400), so it is not valid input.
fn integer_bounds(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let range = match obj.get("format").and_then(Value::as_str) {
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("uint64") => Some((json!(0), json!(u64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range.filter(|_| obj.get("type") == Some(&json!("integer"))) {
                obj.entry("minimum").or_insert(min);
                obj.entry("maximum").or_insert(max);
            }
            obj.values_mut().for_each(integer_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_bounds),
        _ => {}
    }
}

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document_text() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_default() + "\n"
}

fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

fn merge(target: &mut Value, fact: Value) {
    if let (Some(t), Value::Object(f)) = (target.as_object_mut(), fact) {
        t.extend(f);
    }
}

/// Every property poem-openapi did not list as required is an `Option` in Rust: `null` is written and accepted.
fn nullable_optionals(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let required: Vec<Value> = schema["required"].as_array().cloned().unwrap_or_default();
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, prop) in props.iter_mut() {
            if required.iter().any(|r| r == name.as_str()) {
                continue;
            }
            if let Some(obj) = prop.as_object_mut() {
                // OpenAPI 3.0 ignores siblings of `$ref`: wrap it so `nullable` counts.
                if let Some(reference) = obj.remove("$ref") {
                    obj.insert("allOf".into(), json!([{ "$ref": reference }]));
                }
                obj.insert("nullable".into(), Value::Bool(true));
            }
        }
    }
}

fn enumeration<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Value {
    Value::Array(
        values
            .into_iter()
            .map(|v| Value::String(v.as_ref().to_owned()))
            .collect(),
    )
}

fn delivery_statuses() -> Value {
    enumeration(DeliveryStatus::ALL.map(DeliveryStatus::as_str))
}

fn job_statuses() -> Value {
    enumeration(DeliveryStatus::ALL.map(job_status_name))
}

fn scopes() -> Value {
    json!({ "minItems": 1, "items": { "type": "string", "enum": enumeration(SCOPES.iter().map(|(s, _)| *s)) } })
}

/// The registry the service builds (endpoints do not matter to the document).
fn offered_connectors() -> ::connectors::Registry {
    crate::startup::connector_registry(Default::default(), Default::default(), Default::default())
}

fn connector_types() -> Value {
    let mut types: Vec<&str> = offered_connectors()
        .all()
        .map(|a| a.connector_type())
        .collect();
    types.sort_unstable();
    enumeration(types)
}

fn connector_events() -> Value {
    let mut events: Vec<&str> = offered_connectors()
        .all()
        .flat_map(|a| a.supported_events().iter().copied())
        .collect();
    events.sort_unstable();
    events.dedup();
    json!({ "items": { "type": "string", "enum": enumeration(events) } })
}

/// (schema, property, what to add to its schema).
fn property_facts() -> Vec<(&'static str, &'static str, Value)> {
    let pattern = json!({ "type": "string", "anyOf": [
        { "enum": ["*"] },
        { "pattern": EVENT_TYPE, "maxLength": 100 },
        { "pattern": PREFIX_WILDCARD, "maxLength": 102 },
    ] });
    let events = json!({ "minItems": 1, "maxItems": 100, "items": pattern });
    let target = json!({ "maxLength": 2048, "pattern": target_url_pattern() });
    vec![
        ("CreateSubscription", "targetUrl", target.clone()),
        ("CreateSubscription", "events", events.clone()),
        ("UpdateSubscription", "targetUrl", target),
        ("UpdateSubscription", "events", events),
        ("Subscription", "storeId", json!({ "pattern": STORE_ID })),
        (
            "UpdatedSubscription",
            "storeId",
            json!({ "pattern": STORE_ID }),
        ),
        (
            "EventTypeInfo",
            "type",
            json!({ "pattern": EVENT_TYPE, "maxLength": 100 }),
        ),
        ("EventTypeInfo", "schema", json!({ "type": "object" })),
        ("EventTypeInfo", "example", json!({ "type": "object" })),
        (
            "EventTypeInfo",
            "previousAttributes",
            json!({ "type": "object" }),
        ),
        ("CreateCredential", "scopes", scopes()),
        ("UpdateCredential", "scopes", scopes()),
        ("Rotate", "graceSeconds", json!({ "maximum": 86400 })),
    ]
    .into_iter()
    .chain(connector_facts())
    .chain(status_facts())
    .collect()
}

/// The connector DTOs' facts: known types and events, settings objects, poll interval bounds.
fn connector_facts() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "CreateConnector",
            "connectorType",
            json!({ "enum": connector_types() }),
        ),
        ("CreateConnector", "eventSubscriptions", connector_events()),
        ("CreateConnector", "settings", json!({ "type": "object" })),
        (
            "CreateConnector",
            "pollIntervalSecs",
            json!({ "minimum": 0, "maximum": 86400 }),
        ),
        ("UpdateConnector", "eventSubscriptions", connector_events()),
        ("UpdateConnector", "settings", json!({ "type": "object" })),
        (
            "UpdateConnector",
            "pollIntervalSecs",
            json!({ "minimum": 0, "maximum": 86400 }),
        ),
        (
            "Connector",
            "connectorType",
            json!({ "enum": connector_types() }),
        ),
        (
            "ConnectorType",
            "connectorType",
            json!({ "enum": connector_types() }),
        ),
    ]
}

/// The enumerated statuses, directions and OAuth values the DTOs hold as strings.
fn status_facts() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("Delivery", "status", json!({ "enum": delivery_statuses() })),
        (
            "Attempt",
            "status",
            json!({ "enum": ["DELIVERED", "FAILED"] }),
        ),
        ("ConnectorJob", "status", json!({ "enum": job_statuses() })),
        (
            "SyncRun",
            "direction",
            json!({ "enum": ["INBOUND", "OUTBOUND"] }),
        ),
        (
            "SyncRun",
            "status",
            json!({ "enum": ["SUCCEEDED", "FAILED", "SKIPPED"] }),
        ),
        (
            "TokenRequest",
            "grant_type",
            json!({ "enum": ["client_credentials"] }),
        ),
        ("AccessToken", "token_type", json!({ "enum": ["Bearer"] })),
    ]
}

/// (path, method, parameter, what to add to its schema).
fn parameter_facts() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let statuses = json!({ "enum": delivery_statuses() });
    let limit =
        json!({ "description": "Page size, 50 by default; values outside 1-200 are clamped." });
    let mut facts = vec![
        ("/deliveries", "get", "status", statuses.clone()),
        ("/subscriptions/{id}/deliveries", "get", "status", statuses),
        (
            "/connectors/{id}/sync-log",
            "get",
            "direction",
            json!({ "enum": ["INBOUND", "OUTBOUND"] }),
        ),
        (
            "/connectors/{id}/sync-log",
            "get",
            "status",
            json!({ "enum": ["SUCCEEDED", "FAILED", "SKIPPED"] }),
        ),
        (
            "/connectors/{id}/jobs",
            "get",
            "status",
            json!({ "enum": job_statuses() }),
        ),
        (
            "/subscriptions/{id}/test",
            "post",
            "eventType",
            json!({ "enum": enumeration(workflows::event_types::all().iter().map(|e| e.event_type.as_str())) }),
        ),
    ];
    for path in [
        "/subscriptions",
        "/deliveries",
        "/subscriptions/{id}/deliveries",
        "/dead-letters",
        "/credentials",
        "/connectors",
        "/connectors/{id}/sync-log",
        "/connectors/{id}/jobs",
    ] {
        facts.push((path, "get", "limit", limit.clone()));
    }
    facts
}

/// `X-SS3-Store-Id` on every route that takes a `StoreAuth` caller: operators name the store with it.
fn declare_store_header(doc: &mut Value) {
    let header = json!({
        "name": "X-SS3-Store-Id",
        "in": "header",
        "required": false,
        "description": "The store an operator acts on: required with the operator token, ignored for store credentials.",
        "schema": { "type": "string", "pattern": STORE_ID },
    });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(Map::values_mut)
    {
        let store_scoped = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|alt| alt.get("StoreAuth").is_some()));
        if !store_scoped {
            continue;
        }
        let params = operation
            .as_object_mut()
            .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
        if let Some(Value::Array(params)) = params {
            params.push(header.clone());
        }
    }
}

/// `POST /events` reads raw JSON (the Kafka parser decides); document what that parser accepts.
fn event_envelope(doc: &mut Value) {
    let envelope = json!({
        "type": "object",
        "title": "EventEnvelope",
        "description": "A domain event, as on Kafka (README, Event envelope).",
        "required": ["eventId", "eventType", "storeId"],
        "properties": {
            "eventId": { "type": "string", "format": "uuid", "description": "Unique; a repeated id is a duplicate." },
            "eventType": { "type": "string", "pattern": EVENT_TYPE, "maxLength": 100 },
            "storeId": { "type": "string", "pattern": STORE_ID },
            "occurredAt": { "type": "string", "format": "date-time", "nullable": true, "description": "RFC 3339; absent or null: the time it was received." },
            "data": { "description": "The event's payload, any JSON; absent or null: `{}`." },
            "previousAttributes": { "description": "Changed fields' old values, any JSON; null: none." },
        },
    });
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("EventEnvelope".into(), envelope);
    }
    if let Some(schema) = doc.pointer_mut(
        "/paths/~1events/post/requestBody/content/application~1json; charset=utf-8/schema",
    ) {
        *schema = json!({ "$ref": "#/components/schemas/EventEnvelope" });
    }
}
