//! The delivery log (filters by event type, status, dates and subscription; cursor paging) and a delivery's page:
//! its payload, every attempt as a timeline, the headers it is sent with (signatures truncated), re-trigger and
//! resend. A delivery still waiting refreshes its status part every second (htmx) until it is finished.

use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, Request, Response, Route, get, handler, post};
use poem_openapi::param::{Path as ApiPath, Query as ApiQuery};
use poem_openapi::payload::Json;
use serde::Deserialize;
use workflows::ids::{DeliveryId, SubscriptionId};

use super::{blank_none, path_id, refusal, when};
use crate::admin::layout::{button_form, error, html_response, not_found, page, see_other};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted, signed_in, state};
use crate::api::auth::WebhooksAuth;
use crate::api::deliveries::{DeliveriesApi, Delivery, DeliveryPage};
use crate::api::types::FilterText;

/// `/admin/deliveries/...`.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(list))
        .at("/:id", get(show))
        .at("/:id/live", get(live))
        .at("/:id/retrigger", post(retrigger))
        .at("/:id/resend", post(resend))
}

/// The log's filters, as the filter form sends them (blank fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    event_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    subscription_id: Option<String>,
    cursor: Option<String>,
}

fn day(v: Option<&String>, end: bool) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = blank_none(v) else {
        return Ok(None);
    };
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| format!("{raw:?} is not a date (YYYY-MM-DD)"))?;
    let t = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(t.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

const STATUSES: &[&str] = &[
    "PENDING",
    "FAILED",
    "DELIVERED",
    "DEAD_LETTERED",
    "CANCELLED",
];

fn filter_form(f: &Filters) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form #log-filter.filters method="get" action="/admin/deliveries" {
            label { "Event type" input type="text" name="event_type" value=(v(&f.event_type)); }
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[f.status.as_deref() == Some(*s)] { (s) } }
            } }
            label { "From" input type="date" name="from" value=(v(&f.from)); }
            label { "To" input type="date" name="to" value=(v(&f.to)); }
            label { "Subscription id" input type="text" name="subscription_id" value=(v(&f.subscription_id)); }
            button type="submit" { "Filter" }
        }
    }
}

fn next_link(f: &Filters, cursor: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("event_type", &f.event_type),
        ("status", &f.status),
        ("from", &f.from),
        ("to", &f.to),
        ("subscription_id", &f.subscription_id),
    ] {
        if let Some(v) = blank_none(v.as_ref()) {
            q.append_pair(k, v);
        }
    }
    q.append_pair("cursor", cursor);
    format!("/admin/deliveries?{}", q.finish())
}

/// `GET /admin/deliveries`.
#[handler]
pub async fn list(req: &Request, Query(f): Query<Filters>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let title = "Delivery log";
    let invalid = |m: String| {
        html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&session, title, html! { (error(&m)) (filter_form(&f)) }),
        )
    };
    let (from, to) = match (day(f.from.as_ref(), false), day(f.to.as_ref(), true)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(m), _) | (_, Err(m)) => return invalid(m),
    };
    let sub = match blank_none(f.subscription_id.as_ref()).map(path_id::<SubscriptionId>) {
        None => None,
        Some(Some(sub)) => Some(sub),
        Some(None) => return invalid("The subscription id is not a UUID.".into()),
    };
    let event_type = match blank_none(f.event_type.as_ref())
        .map(FilterText::parse)
        .transpose()
    {
        Ok(t) => t,
        Err(m) => return invalid(format!("Event type: {m}")),
    };
    let auth = WebhooksAuth(session.scope.clone());
    let status = blank_none(f.status.as_ref()).map(str::to_owned);
    let cursor = blank_none(f.cursor.as_ref()).map(str::to_owned);
    let listed = DeliveriesApi
        .list(
            auth,
            Data(state(req)),
            ApiQuery(sub),
            ApiQuery(status),
            ApiQuery(event_type),
            ApiQuery(from),
            ApiQuery(to),
            ApiQuery(cursor),
            ApiQuery(Some(50)),
        )
        .await;
    let page_ = match listed {
        Ok(Json(p)) => p,
        Err(e) if e.0.status_and_code().0 == StatusCode::UNPROCESSABLE_ENTITY => {
            return invalid(e.0.to_string());
        }
        Err(e) => return refusal(&session, title, &e.0),
    };
    html_response(StatusCode::OK, page(&session, title, log_table(&f, &page_)))
}

fn log_table(f: &Filters, page_: &DeliveryPage) -> Markup {
    html! {
    (filter_form(f))
    @if page_.items.is_empty() { p { "No deliveries match." } }
    div.table-wrap { table #deliveries {
        thead { tr { th scope="col" { "Time" } th scope="col" { "Event type" } th scope="col" { "Status" }
            th scope="col" { "Attempts" } th scope="col" { "HTTP" } th scope="col" { "Response time" } } }
        tbody { @for d in &page_.items { tr data-delivery-id=(d.delivery_id) {
            td.time { a href=(format!("/admin/deliveries/{}", d.delivery_id)) { (when(d.created_at)) } }
            td.event-type { (d.event_type) }
            td.status class=(format!("status-{}", d.status)) { (d.status) }
            td.attempts { (d.attempts.len()) }
            td.http-status { (d.http_status.map(|s| s.to_string()).unwrap_or_default()) }
            td.response-time { (d.response_time_ms.map(|m| format!("{m} ms")).unwrap_or_default()) }
        } } }
    } }
    @if let Some(c) = &page_.next_cursor { p { a #next-page href=(next_link(f, c)) { "Older deliveries" } } }
    }
}

async fn load(req: &Request, session: &Session, raw: &str) -> Result<Delivery, Response> {
    let Some(id) = path_id::<DeliveryId>(raw) else {
        return Err(not_found(session));
    };
    let auth = WebhooksAuth(session.scope.clone());
    match DeliveriesApi.get(auth, Data(state(req)), ApiPath(id)).await {
        Ok(Json(d)) => Ok(d),
        Err(e) => Err(refusal(session, "Delivery", &e.0)),
    }
}

fn waiting(d: &Delivery) -> bool {
    matches!(d.status.as_str(), "PENDING" | "FAILED")
}

/// The part of a delivery's page that changes while it is attempted.
fn live_part(session: &Session, d: &Delivery) -> Markup {
    let base = format!("/admin/deliveries/{}", d.delivery_id);
    let finished = !waiting(d);
    html! {
        section #delivery-live aria-live="polite"
            hx-get=[waiting(d).then(|| format!("{base}/live"))] hx-trigger=[waiting(d).then_some("every 1s")]
            hx-swap="outerHTML" {
            p {
                @if matches!(d.status.as_str(), "DEAD_LETTERED" | "CANCELLED") { (button_form(session, Some("retrigger"), &format!("{base}/retrigger"), "Re-trigger")) " " }
                @if finished { (button_form(session, Some("resend"), &format!("{base}/resend"), "Resend")) }
            }
            p { "Status: " strong #delivery-status class=(format!("status-{}", d.status)) { (d.status) }
                @if let Some(at) = d.next_retry_at { " · next attempt " (when(at)) } }
            h2 { "Attempts" }
            @if d.attempts.is_empty() { p { "No attempt yet." } }
            ol #attempts.timeline { @for a in &d.attempts { li.attempt {
                strong { "Attempt " (a.attempt_number) } " · " (when(a.started_at)) " · "
                span.outcome { (a.status) } " · HTTP " span.http-status { (a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
                " · " span.duration { (a.response_time_ms) " ms" } " · worker " span.worker { (a.worker) }
                @if let Some(e) = &a.error { br; "Error: " span.error { (e) } }
                @if let Some(b) = &a.response_body { details { summary { "Response body" } pre.response-body { (b) } } }
            } } }
        }
    }
}

/// `GET /admin/deliveries/:id/live`: the status part alone (htmx swaps it in).
#[handler]
pub async fn live(req: &Request, Path(raw): Path<String>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let d = or_answer!(load(req, &session, &raw).await);
    html_response(StatusCode::OK, live_part(&session, &d))
}

/// `GET /admin/deliveries/:id`.
#[handler]
pub async fn show(req: &Request, Path(raw): Path<String>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let d = or_answer!(load(req, &session, &raw).await);
    let headers = super::headers::sent(state(req), &d).await;
    let body = html! {
        p { "Delivery " code { (d.delivery_id) } " of " code { (d.event_type) } " to subscription "
            a href=(format!("/admin/subscriptions/{}", d.subscription_id)) { code { (d.subscription_id) } }
            " · created " (when(d.created_at)) }
        (live_part(&session, &d))
        h2 { "Headers" }
        p.muted { "As sent by the latest attempt, rebuilt from the stored payload (signatures truncated)." }
        dl #headers { @for (k, v) in &headers { dt { (k) } dd { code { (v) } } } }
        h2 { "Payload" }
        pre #payload { (serde_json::to_string_pretty(&d.payload).unwrap_or_default()) }
    };
    html_response(StatusCode::OK, page(&session, "Delivery", body))
}

async fn restart(req: &Request, raw: String, body: Body, any_finished: bool) -> Response {
    let (session, _) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<DeliveryId>(&raw) else {
        return not_found(&session);
    };
    let auth = WebhooksAuth(session.scope.clone());
    let done = if any_finished {
        DeliveriesApi
            .resend(auth, Data(state(req)), ApiPath(id))
            .await
    } else {
        DeliveriesApi
            .retrigger(auth, Data(state(req)), ApiPath(id))
            .await
    };
    match done {
        Ok(_) => see_other(&format!("/admin/deliveries/{id}")),
        Err(e) => refusal(
            &session,
            if any_finished { "Resend" } else { "Re-trigger" },
            &e.0,
        ),
    }
}

/// `POST /admin/deliveries/:id/retrigger` (dead-lettered or cancelled).
#[handler]
pub async fn retrigger(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    restart(req, raw, body, false).await
}

/// `POST /admin/deliveries/:id/resend` (any finished delivery).
#[handler]
pub async fn resend(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    restart(req, raw, body, true).await
}
