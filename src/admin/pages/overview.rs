//! The overview: the store's subscriptions with deliveries and success rate over 24 h and 30 days (today and the 29
//! days before, UTC, as the statistics), current dead letters and whether each is active.

use std::collections::HashMap;

use chrono::Duration;
use maud::html;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};
use poem_openapi::param::Query;
use workflows::stats::success_rate;

use super::{percent, refusal};
use crate::admin::layout::{html_response, page};
use crate::admin::{or_answer, signed_in, state, unavailable};
use crate::api::auth::WebhooksAuth;
use crate::api::stats::window_start;
use crate::api::subscriptions::SubscriptionsApi;
use crate::db::stats;

/// `GET /admin`.
#[handler]
pub async fn show(req: &Request) -> Response {
    let session = or_answer!(signed_in(req).await);
    let state = state(req);
    let auth = WebhooksAuth(session.scope.clone());
    let listed = SubscriptionsApi
        .list(auth, Data(state), Query(None), Query(Some(200)))
        .await;
    let subs = match listed {
        Ok(page) => page.0.items,
        Err(e) => return refusal(&session, "Overview", &e.0),
    };
    let now = state.clock.now();
    let store = &session.scope.store_id;
    let month = (window_start(now, 30), now + Duration::seconds(1));
    let recent = match stats::recent(&state.pool, store, now - Duration::hours(24), month).await {
        Ok(rows) => rows
            .into_iter()
            .map(|r| (r.subscription_id, r))
            .collect::<HashMap<_, _>>(),
        Err(e) => return unavailable(&e),
    };
    let dead: HashMap<_, _> = match stats::dead_letters(&state.pool, store).await {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => return unavailable(&e),
    };
    let body = html! {
        p { a #new-subscription href="/admin/subscriptions/new" { "New subscription" } }
        @if subs.is_empty() { p { "No subscriptions yet." } }
        div.table-wrap { table #subscriptions {
            caption.muted { "Attempts and success rate (delivered ÷ finished) from the hourly counters." }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Target" } th scope="col" { "State" }
                th scope="col" { "Attempts 24 h" } th scope="col" { "Success 24 h" }
                th scope="col" { "Attempts 30 d" } th scope="col" { "Success 30 d" } th scope="col" { "Dead letters" }
            } }
            tbody { @for s in &subs {
                @let id = s.subscription_id.uuid();
                @let r = recent.get(&id).cloned().unwrap_or_default();
                tr data-subscription-id=(id) {
                    td.name { a href=(format!("/admin/subscriptions/{id}")) { (s.name) } }
                    td.target { (s.target_url) }
                    td.active { (if s.is_active { "active" } else { "inactive" }) }
                    td.deliveries-24h { (r.attempts_24h) }
                    td.success-24h { (percent(success_rate(r.delivered_24h, r.dead_lettered_24h))) }
                    td.deliveries-30d { (r.attempts_30d) }
                    td.success-30d { (percent(success_rate(r.delivered_30d, r.dead_lettered_30d))) }
                    td.dead-letters { (dead.get(&id).copied().unwrap_or(0)) }
                }
            } }
        } }
    };
    html_response(StatusCode::OK, page(&session, "Overview", body))
}
