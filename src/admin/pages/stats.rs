//! Statistics pages (the store, one subscription): a chart of attempts per day by outcome with the success rate,
//! the totals, a table per day with response-time percentiles, and the error distribution. The same figures as
//! `GET /stats` and `GET /subscriptions/{id}/stats` (the same function reads them).

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use workflows::ids::SubscriptionId;

use super::{path_id, percent, refusal};
use crate::admin::layout::{html_response, json_data, not_found, page};
use crate::admin::session::Session;
use crate::admin::{or_answer, signed_in, state};
use crate::api::deliveries::known_subscription;
use crate::api::stats::{Stats, read, window_days};
use crate::db::stats::Scope;

/// `?days=N`.
#[derive(Debug, Deserialize)]
pub struct Window {
    days: Option<i64>,
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("≤ {v} ms"))
}

fn render(stats: &Stats, base: &str) -> Markup {
    let t = &stats.totals;
    let chart = json!({
        "days": stats.daily.iter().map(|d| d.day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())).collect::<Vec<_>>(),
        "deliveredFirst": stats.daily.iter().map(|d| d.counts.delivered_first).collect::<Vec<_>>(),
        "deliveredRetry": stats.daily.iter().map(|d| d.counts.delivered_after_retries).collect::<Vec<_>>(),
        "deadLettered": stats.daily.iter().map(|d| d.counts.dead_lettered).collect::<Vec<_>>(),
        "retrying": stats.daily.iter().map(|d| d.counts.retries_scheduled).collect::<Vec<_>>(),
        "successRate": stats.daily.iter().map(|d| d.counts.success_rate.map(|r| r * 100.0)).collect::<Vec<_>>(),
    });
    html! {
        nav aria-label="Window" { p { "Window: "
            @for d in [1, 7, 30, 90] { a href=(format!("{base}?days={d}")) { (d) " days" } " " }
            span.muted { "(" (stats.days) " days, UTC, to " (super::when(stats.to)) ")" } } }
        dl #totals.totals {
            div { dt { "Delivered first time" } dd #total-delivered-first { (t.delivered_first) } }
            div { dt { "Delivered after retries" } dd #total-delivered-retry { (t.delivered_after_retries) } }
            div { dt { "Dead-lettered" } dd #total-dead-lettered { (t.dead_lettered) } }
            div { dt { "Retries scheduled" } dd #total-retrying { (t.retries_scheduled) } }
            div { dt { "Attempts" } dd #total-attempts { (t.attempts) } }
            div { dt { "Success rate" } dd #total-success-rate { (percent(t.success_rate)) } }
        }
        figure {
            div #chart role="img" aria-label="Attempts per day by outcome, and the success rate per day; the table below has the same figures" {}
            (json_data("chart-data", &chart))
        }
        h2 { "Errors" }
        @if t.errors.is_empty() { p { "No failed attempts." } }
        table #errors { thead { tr { th scope="col" { "Error" } th scope="col" { "Failed attempts" } } }
            tbody { @for e in &t.errors { tr data-error-class=(e.class) { td.class { (e.class) } td.count { (e.count) } } } } }
        h2 { "Per day" }
        div.table-wrap { table #daily {
            thead { tr { th scope="col" { "Day" } th scope="col" { "First time" } th scope="col" { "After retries" }
                th scope="col" { "Dead-lettered" } th scope="col" { "Retries" } th scope="col" { "Success" }
                th scope="col" { "p50" } th scope="col" { "p95" } th scope="col" { "Errors" } } }
            tbody { @for d in stats.daily.iter().rev() { @let c = &d.counts; tr {
                td.day { (d.day) } td.delivered-first { (c.delivered_first) } td.delivered-retry { (c.delivered_after_retries) }
                td.dead-lettered { (c.dead_lettered) } td.retrying { (c.retries_scheduled) } td.success-rate { (percent(c.success_rate)) }
                td.p50 { (ms(c.p50_ms)) } td.p95 { (ms(c.p95_ms)) }
                td.errors { @for e in &c.errors { (e.class) ": " (e.count) " " } }
            } } }
        } }
        p.muted { "Response times are histogram bucket bounds (≤ 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10, 30 s)." }
    }
}

fn shown(
    session: &Session,
    title: &str,
    stats: Result<Stats, crate::api::problem::ApiError>,
    base: &str,
) -> Response {
    match stats {
        Ok(s) => html_response(StatusCode::OK, page(session, title, render(&s, base))),
        Err(e) => refusal(session, title, &e),
    }
}

/// `GET /admin/stats`.
#[handler]
pub async fn store(req: &Request, Query(w): Query<Window>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let scope = Scope {
        store_id: &session.scope.store_id,
        subscription: None,
    };
    let stats = read(state(req), scope, window_days(w.days)).await;
    shown(&session, "Statistics", stats, "/admin/stats")
}

/// `GET /admin/subscriptions/:id/stats`.
#[handler]
pub async fn subscription(
    req: &Request,
    Path(raw): Path<String>,
    Query(w): Query<Window>,
) -> Response {
    let session = or_answer!(signed_in(req).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    let store_id = &session.scope.store_id;
    if let Err(e) = known_subscription(state(req), store_id, id).await {
        return refusal(&session, "Statistics", &e);
    }
    let scope = Scope {
        store_id,
        subscription: Some(id),
    };
    let stats = read(state(req), scope, window_days(w.days)).await;
    shown(
        &session,
        "Subscription statistics",
        stats,
        &format!("/admin/subscriptions/{id}/stats"),
    )
}
