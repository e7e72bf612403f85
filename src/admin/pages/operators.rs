//! The event catalog (everyone), and the operators' pages: quarantined Kafka messages (reason, raw bytes as text
//! and hex) and the outbox backlog. Connectors are in `connectors`.

use maud::html;
use poem::http::StatusCode;
use poem::{Request, Response, handler};
use workflows::event_types;

use super::when;
use crate::admin::layout::{html_response, page};
use crate::admin::{or_answer, signed_in, signed_in_operator, state, unavailable};
use crate::db::events::list_quarantine;

/// `GET /admin/event-types`.
#[handler]
pub async fn catalog(req: &Request) -> Response {
    let session = or_answer!(signed_in(req).await);
    let body = html! {
        p { "Every event type the platform emits (also " a href="/event-types" { code { "GET /event-types" } } "). "
            "Subscriptions may use them exactly or with wildcards (" code { "order.*" } ")." }
        table #event-types {
            thead { tr { th scope="col" { "Type" } th scope="col" { "Description" } th scope="col" { "Example and schema" } } }
            tbody { @for e in event_types::all() { tr data-event-type=(e.event_type.as_str()) {
                td { code { (e.event_type.as_str()) } }
                td { (e.description) }
                td {
                    details { summary { "Example data" } pre { (serde_json::to_string_pretty(&e.example).unwrap_or_default()) } }
                    details { summary { "JSON Schema" } pre { (serde_json::to_string_pretty(&e.schema).unwrap_or_default()) } }
                }
            } } }
        }
    };
    html_response(StatusCode::OK, page(&session, "Event catalog", body))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /admin/quarantine`: the newest 100 quarantined Kafka messages.
#[handler]
pub async fn quarantine(req: &Request) -> Response {
    let session = or_answer!(signed_in_operator(req).await);
    let rows = match list_quarantine(&state(req).pool, 100).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(&e),
    };
    let body = html! {
        @if rows.is_empty() { p { "Nothing quarantined." } }
        table #quarantine { thead { tr { th { "Received" } th { "Where" } th { "Reason" } th { "Payload" } } }
            tbody { @for r in &rows { tr {
                td { (when(r.received_at)) } td { (r.kafka_topic) "/" (r.kafka_partition) "@" (r.kafka_offset) }
                td { code { (r.reason_code) } " " (r.reason) }
                td { @if let Some(p) = &r.payload {
                    details { summary { "text" } pre { (String::from_utf8_lossy(p)) } }
                    details { summary { "hex" } pre { (hex(p)) } }
                } }
            } } } }
    };
    html_response(StatusCode::OK, page(&session, "Quarantine", body))
}

/// `GET /admin/outbox`: events not yet published to Kafka, per topic.
#[handler]
pub async fn outbox(req: &Request) -> Response {
    let session = or_answer!(signed_in_operator(req).await);
    let rows: Vec<(String, i64, Option<chrono::DateTime<chrono::Utc>>)> = match sqlx::query_as(
        "SELECT topic, count(*), min(created_at) FROM outbox_messages GROUP BY topic ORDER BY topic",
    )
    .fetch_all(&state(req).pool)
    .await
    {
        Ok(rows) => rows,
        Err(e) => return unavailable(&e),
    };
    let body = html! {
        @if rows.is_empty() { p #outbox-empty { "Every event is published." } }
        table #outbox { thead { tr { th { "Topic" } th { "Unpublished events" } th { "Oldest" } } }
            tbody { @for (topic, n, oldest) in &rows { tr { td { (topic) } td { (n) } td { (oldest.map(when).unwrap_or_default()) } } } } }
    };
    html_response(StatusCode::OK, page(&session, "Outbox", body))
}
