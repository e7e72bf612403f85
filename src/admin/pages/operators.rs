//! The event catalog (everyone), and the operators' pages: connectors (status, which credential fields are set,
//! sync log, jobs, poll now, test connection), quarantined Kafka messages (reason, raw bytes as text and hex) and
//! the outbox backlog.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, Route, get, handler, post};
use poem_openapi::param::{Path as ApiPath, Query as ApiQuery};
use poem_openapi::payload::Json;
use workflows::event_types;
use workflows::ids::ConnectorId;

use super::{refusal, when};
use crate::admin::layout::{
    button_form, html_response, not_found, operators_only, page, result, see_other,
};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted, signed_in, state, unavailable};
use crate::api::auth::OperatorStoreAuth;
use crate::api::connectors::{
    ConfigsApi, Connector, ConnectorCredentialsApi, ConnectorJob, JobsApi, SyncLogApi, SyncRun,
};
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

async fn operator(req: &Request) -> Result<Session, Response> {
    let session = signed_in(req).await?;
    if session.scope.operator {
        Ok(session)
    } else {
        Err(operators_only(&session))
    }
}

/// `/admin/connectors/...` (operators).
pub fn connector_routes() -> Route {
    Route::new()
        .at("/", get(connectors))
        .at("/:id", get(connector))
        .at("/:id/poll", post(poll))
        .at("/:id/test", post(test))
}

/// `GET /admin/connectors`.
#[handler]
pub async fn connectors(req: &Request) -> Response {
    let session = or_answer!(operator(req).await);
    let auth = OperatorStoreAuth(session.scope.clone());
    let list = match ConfigsApi
        .list(auth, Data(state(req)), ApiQuery(None), ApiQuery(Some(200)))
        .await
    {
        Ok(Json(p)) => p.items,
        Err(e) => return refusal(&session, "Connectors", &e.0),
    };
    let body = html! {
        @if list.is_empty() { p { "No connectors configured for this store." } }
        table #connectors {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "State" }
                th scope="col" { "Credentials set" } th scope="col" { "Last poll" } } }
            tbody { @for c in &list { tr data-connector-id=(c.config_id) {
                td { a href=(format!("/admin/connectors/{}", c.config_id)) { (c.display_name) } }
                td { (c.connector_type) } td { (if c.is_active { "active" } else { "inactive" }) }
                td { (c.credentials.set.join(", ")) @if !c.credentials.complete { " (incomplete)" } }
                td { (c.last_polled_at.map(when).unwrap_or_default()) }
            } } }
        }
    };
    html_response(StatusCode::OK, page(&session, "Connectors", body))
}

fn parse(raw: &str) -> Option<ConnectorId> {
    raw.parse::<uuid::Uuid>().ok().map(ConnectorId::from)
}

/// `GET /admin/connectors/:id`: status, credential fields set (never values), sync log, jobs.
#[handler]
pub async fn connector(req: &Request, Path(raw): Path<String>) -> Response {
    let session = or_answer!(operator(req).await);
    let Some(id) = parse(&raw) else {
        return not_found(&session);
    };
    let auth = || OperatorStoreAuth(session.scope.clone());
    let st = || Data(state(req));
    let c = match ConfigsApi.get(auth(), st(), ApiPath(id)).await {
        Ok(Json(c)) => c,
        Err(e) => return refusal(&session, "Connector", &e.0),
    };
    let (n1, n2, n3, n4, n5) = (
        ApiQuery(None),
        ApiQuery(None),
        ApiQuery(None),
        ApiQuery(None),
        ApiQuery(None),
    );
    let log = SyncLogApi
        .sync_log(
            auth(),
            st(),
            ApiPath(id),
            n1,
            n2,
            n3,
            n4,
            n5,
            ApiQuery(Some(50)),
        )
        .await;
    let jobs = JobsApi
        .jobs(
            auth(),
            st(),
            ApiPath(id),
            ApiQuery(None),
            ApiQuery(None),
            ApiQuery(Some(50)),
        )
        .await;
    let (log, jobs) = match (log, jobs) {
        (Ok(Json(l)), Ok(Json(j))) => (l.items, j.items),
        (Err(e), _) | (_, Err(e)) => return refusal(&session, "Connector", &e.0),
    };
    let body = connector_body(&session, &c, &log, &jobs);
    html_response(StatusCode::OK, page(&session, &c.display_name, body))
}

fn connector_body(
    session: &Session,
    c: &Connector,
    log: &[SyncRun],
    jobs: &[ConnectorJob],
) -> Markup {
    let id = c.config_id;
    let base = format!("/admin/connectors/{id}");
    html! {
        p { (c.connector_type) " · " (if c.is_active { "active" } else { "inactive" })
            " · credential fields set: " code #credentials-set { (c.credentials.set.join(", ")) } }
        p { (button_form(session, Some("poll-now"), &format!("{base}/poll"), "Poll now")) " "
            (button_form(session, Some("test-connection"), &format!("{base}/test"), "Test connection")) }
        h2 { "Sync log" }
        table #sync-log { thead { tr { th { "Finished" } th { "Direction" } th { "Entity" } th { "Records" } th { "Status" } th { "Error" } } }
            tbody { @for r in log { tr { td { (when(r.finished_at)) } td { (r.direction) } td { (r.entity_type) }
                td { (r.record_count) } td { (r.status) } td { (r.error_summary.clone().unwrap_or_default()) } } } } }
        h2 { "Jobs" }
        table #jobs { thead { tr { th { "Job" } th { "Event" } th { "Status" } th { "Attempts" } th { "Error" } } }
            tbody { @for j in jobs { tr { td { code { (j.job_id) } } td { (j.event_type) } td { (j.status) }
                td { (j.attempt_number) } td { (j.last_error.clone().unwrap_or_default()) } } } } }
    }
}

/// `POST /admin/connectors/:id/poll`.
#[handler]
pub async fn poll(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, _) = or_answer!(posted(req, body).await);
    if !session.scope.operator {
        return operators_only(&session);
    }
    let Some(id) = parse(&raw) else {
        return not_found(&session);
    };
    let auth = OperatorStoreAuth(session.scope.clone());
    match JobsApi.poll_now(auth, Data(state(req)), ApiPath(id)).await {
        Ok(_) => see_other(&format!("/admin/connectors/{id}")),
        Err(e) => refusal(&session, "Poll now", &e.0),
    }
}

/// `POST /admin/connectors/:id/test`.
#[handler]
pub async fn test(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, _) = or_answer!(posted(req, body).await);
    if !session.scope.operator {
        return operators_only(&session);
    }
    let Some(id) = parse(&raw) else {
        return not_found(&session);
    };
    let auth = OperatorStoreAuth(session.scope.clone());
    match ConnectorCredentialsApi
        .test(auth, Data(state(req)), ApiPath(id))
        .await
    {
        Ok(Json(t)) => {
            let text = format!(
                "{}: {}",
                if t.ok {
                    "Connection works"
                } else {
                    "Connection failed"
                },
                t.detail
            );
            html_response(
                StatusCode::OK,
                page(
                    &session,
                    "Test connection",
                    html! {
                    (result(&text)) p { a href=(format!("/admin/connectors/{id}")) { "Back" } } },
                ),
            )
        }
        Err(e) => refusal(&session, "Test connection", &e.0),
    }
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
    let session = or_answer!(operator(req).await);
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
    let session = or_answer!(operator(req).await);
    let rows: Vec<(String, i64, Option<chrono::DateTime<chrono::Utc>>)> = match sqlx::query_as(
        "SELECT topic, count(*), min(created_at) FROM outbox_messages WHERE published_at IS NULL GROUP BY topic ORDER BY topic",
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
