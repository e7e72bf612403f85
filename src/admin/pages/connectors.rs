//! Connectors (operators, as in the API): each configured connector with its state and which credential fields are
//! set (never their values), its sync log with filters, its jobs with re-trigger, "poll now" and "test connection".

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, Request, Response, Route, get, handler, post};
use poem_openapi::param::{Path as ApiPath, Query as ApiQuery};
use poem_openapi::payload::Json;
use serde::Deserialize;
use workflows::ids::{ConnectorId, ConnectorJobId};

use super::{blank_none, path_id, refusal, when};
use crate::admin::layout::{button_form, html_response, not_found, page, result, see_other};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted_operator, signed_in_operator, state};
use crate::api::auth::OperatorStoreAuth;
use crate::api::connectors::{
    ConfigsApi, Connector, ConnectorCredentialsApi, ConnectorJob, JobsApi, SyncLogApi, SyncRun,
};
use crate::api::types::FilterText;

/// The sync log's filters (blank: none).
#[derive(Debug, Default, Deserialize)]
pub struct LogFilters {
    direction: Option<String>,
    status: Option<String>,
    entity_type: Option<String>,
}

/// `/admin/connectors/...` (operators).
pub fn routes() -> Route {
    Route::new()
        .at("/", get(connectors))
        .at("/:id", get(connector))
        .at("/:id/poll", post(poll))
        .at("/:id/test", post(test))
        .at("/:id/jobs/:job_id/retrigger", post(retrigger_job))
}

/// `GET /admin/connectors`.
#[handler]
pub async fn connectors(req: &Request) -> Response {
    let session = or_answer!(signed_in_operator(req).await);
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

/// `GET /admin/connectors/:id`: status, credential fields set (never values), sync log, jobs.
#[handler]
pub async fn connector(
    req: &Request,
    Path(raw): Path<String>,
    Query(f): Query<LogFilters>,
) -> Response {
    let session = or_answer!(signed_in_operator(req).await);
    let Some(id) = path_id::<ConnectorId>(&raw) else {
        return not_found(&session);
    };
    let auth = || OperatorStoreAuth(session.scope.clone());
    let st = || Data(state(req));
    let c = match ConfigsApi.get(auth(), st(), ApiPath(id)).await {
        Ok(Json(c)) => c,
        Err(e) => return refusal(&session, "Connector", &e.0),
    };
    let entity = blank_none(f.entity_type.as_ref()).and_then(|e| FilterText::parse(e).ok());
    let (n1, n2, n3, n4, n5) = (
        ApiQuery(blank_none(f.direction.as_ref()).map(str::to_owned)),
        ApiQuery(blank_none(f.status.as_ref()).map(str::to_owned)),
        ApiQuery(entity),
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
    let body = connector_body(&session, &c, (&f, &log), &jobs);
    html_response(StatusCode::OK, page(&session, &c.display_name, body))
}

fn connector_body(
    session: &Session,
    c: &Connector,
    (f, log): (&LogFilters, &[SyncRun]),
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
        form #sync-log-filter.filters method="get" action=(base) {
            label { "Direction" select name="direction" { option value="" { "any" }
                @for d in ["INBOUND", "OUTBOUND"] { option value=(d) selected[f.direction.as_deref() == Some(d)] { (d) } } } }
            label { "Status" select name="status" { option value="" { "any" }
                @for st in ["SUCCEEDED", "FAILED", "SKIPPED"] { option value=(st) selected[f.status.as_deref() == Some(st)] { (st) } } } }
            label { "Entity" input type="text" name="entity_type" value=(f.entity_type.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        table #sync-log { thead { tr { th { "Finished" } th { "Direction" } th { "Entity" } th { "Records" } th { "Status" } th { "Error" } } }
            tbody { @for r in log { tr { td { (when(r.finished_at)) } td { (r.direction) } td { (r.entity_type) }
                td { (r.record_count) } td { (r.status) } td { (r.error_summary.clone().unwrap_or_default()) } } } } }
        h2 { "Jobs" }
        table #jobs { thead { tr { th { "Job" } th { "Event" } th { "Status" } th { "Attempts" } th { "Error" } th { "" } } }
            tbody { @for j in jobs { tr { td { code { (j.job_id) } } td { (j.event_type) } td { (j.status) }
                td { (j.attempt_number) } td { (j.last_error.clone().unwrap_or_default()) }
                td { @if matches!(j.status.as_str(), "DEAD_LETTERED" | "CANCELLED") {
                    (button_form(session, None, &format!("{base}/jobs/{}/retrigger", j.job_id), "Re-trigger")) } }
            } } } }
    }
}

/// An operator's form post about connector `raw`, CSRF checked (403 for a store admin, 404 for a bad id).
async fn operator_post(
    req: &Request,
    body: Body,
    raw: &str,
) -> Result<(Session, ConnectorId), Response> {
    let (session, _) = posted_operator(req, body).await?;
    match path_id::<ConnectorId>(raw) {
        Some(id) => Ok((session, id)),
        None => Err(not_found(&session)),
    }
}

/// `POST /admin/connectors/:id/poll`.
#[handler]
pub async fn poll(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, id) = or_answer!(operator_post(req, body, &raw).await);
    let auth = OperatorStoreAuth(session.scope.clone());
    match JobsApi.poll_now(auth, Data(state(req)), ApiPath(id)).await {
        Ok(_) => see_other(&format!("/admin/connectors/{id}")),
        Err(e) => refusal(&session, "Poll now", &e.0),
    }
}

/// `POST /admin/connectors/:id/test`.
#[handler]
pub async fn test(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, id) = or_answer!(operator_post(req, body, &raw).await);
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

/// `POST /admin/connectors/:id/jobs/:job_id/retrigger` (a dead-lettered or cancelled job).
#[handler]
pub async fn retrigger_job(
    req: &Request,
    Path((raw, job)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (session, id) = or_answer!(operator_post(req, body, &raw).await);
    let Some(job_id) = path_id::<ConnectorJobId>(&job) else {
        return not_found(&session);
    };
    let auth = OperatorStoreAuth(session.scope.clone());
    match JobsApi
        .retrigger(auth, Data(state(req)), ApiPath(id), ApiPath(job_id))
        .await
    {
        Ok(_) => see_other(&format!("/admin/connectors/{id}")),
        Err(e) => refusal(&session, "Re-trigger", &e.0),
    }
}
