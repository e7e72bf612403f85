//! Dead letters: the list with reason and time; re-trigger the selected ones, or all since a time, in one action,
//! with the count confirmed.

use chrono::{DateTime, NaiveDateTime, Utc};
use maud::html;
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Body, Request, Response, handler};
use poem_openapi::param::{Path as ApiPath, Query as ApiQuery};
use poem_openapi::payload::Json;
use serde::Deserialize;
use workflows::ids::{DeliveryId, SubscriptionId};

use super::{path_id, refusal, when};
use crate::admin::layout::{csrf_field, error, html_response, page, result};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted, signed_in, state};
use crate::api::AppState;
use crate::api::auth::WebhooksAuth;
use crate::api::deliveries::{DeliveriesApi, RetriggerSince};
use crate::api::subscriptions::SubscriptionsApi;

/// `?cursor=`.
#[derive(Debug, Deserialize)]
pub struct Paging {
    cursor: Option<String>,
}

/// `GET /admin/dead-letters`.
#[handler]
pub async fn list(req: &Request, Query(p): Query<Paging>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let auth = WebhooksAuth(session.scope.clone());
    let cursor = p.cursor.filter(|c| !c.is_empty());
    let listed = DeliveriesApi
        .dead_letters(
            auth,
            Data(state(req)),
            ApiQuery(cursor),
            ApiQuery(Some(100)),
        )
        .await;
    let dead = match listed {
        Ok(Json(page)) => page,
        Err(e) => return refusal(&session, "Dead letters", &e.0),
    };
    let body = html! {
        @if dead.items.is_empty() { p { "No dead letters." } }
        form #bulk-retrigger method="post" action="/admin/dead-letters/retrigger" {
            (csrf_field(&session))
            div.table-wrap { table #dead-letters {
                thead { tr { th scope="col" { span.muted { "Select" } } th scope="col" { "Dead-lettered" }
                    th scope="col" { "Event type" } th scope="col" { "Reason" } th scope="col" { "Delivery" } } }
                tbody { @for d in &dead.items { tr data-delivery-id=(d.delivery_id) {
                    td { input type="checkbox" name="delivery_id" value=(d.delivery_id)
                        aria-label=(format!("Select delivery {}", d.delivery_id)); }
                    td.time { (when(d.updated_at)) }
                    td.event-type { (d.event_type) }
                    td.reason { (d.last_error.clone().unwrap_or_default()) }
                    td { a href=(format!("/admin/deliveries/{}", d.delivery_id)) { "details" } }
                } } }
            } }
            button #retrigger-selected type="submit" { "Re-trigger selected" }
        }
        @if let Some(c) = &dead.next_cursor { p { a #next-page href=(format!("/admin/dead-letters?cursor={c}")) { "More" } } }
        h2 { "Re-trigger all since a time" }
        form #retrigger-since.filters method="post" action="/admin/dead-letters/retrigger" {
            (csrf_field(&session))
            label { "Dead-lettered since (UTC)" input type="datetime-local" name="since" required; }
            button #retrigger-since-button type="submit" { "Re-trigger all since" }
        }
    };
    html_response(StatusCode::OK, page(&session, "Dead letters", body))
}

/// A `since` field with seconds, as a form of another page fills it in (a browser's `datetime-local` input may
/// leave the seconds out); parsed as UTC.
pub(super) const SINCE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn since(raw: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M", SINCE_FORMAT]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| t.and_utc())
}

/// The subscriptions a re-trigger since a time covers: the one named (the offer made when a disabled subscription
/// is activated), or every one of the store's.
async fn which_subscriptions(
    session: &Session,
    state: &AppState,
    named: Option<&str>,
) -> Result<Vec<SubscriptionId>, Response> {
    if let Some(one) = named.and_then(path_id::<SubscriptionId>) {
        return Ok(vec![one]);
    }
    let auth = WebhooksAuth(session.scope.clone());
    match SubscriptionsApi
        .list(auth, Data(state), ApiQuery(None), ApiQuery(Some(200)))
        .await
    {
        Ok(Json(p)) => Ok(p.items.into_iter().map(|s| s.subscription_id).collect()),
        Err(e) => Err(refusal(session, "Dead letters", &e.0)),
    }
}

/// `POST /admin/dead-letters/retrigger`: the selected deliveries, or every dead letter of the store since `since`
/// (through each subscription's bulk re-trigger).
#[handler]
pub async fn retrigger(req: &Request, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let title = "Dead letters";
    let state = state(req);
    let mut restarted = 0usize;
    if let Some(raw) = form.text("since") {
        let Some(at) = since(raw) else {
            return html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&session, title, error("Not a date and time.")),
            );
        };
        let auth = || WebhooksAuth(session.scope.clone());
        let subs = match which_subscriptions(&session, state, form.text("subscription_id")).await {
            Ok(subs) => subs,
            Err(answer) => return answer,
        };
        for id in subs {
            let body = Json(RetriggerSince { since: at });
            match DeliveriesApi
                .retrigger_since(auth(), Data(state), ApiPath(id), body)
                .await
            {
                Ok(Json(r)) => restarted += r.delivery_ids.len(),
                Err(e) => return refusal(&session, title, &e.0),
            }
        }
    } else {
        for raw in form.all("delivery_id") {
            let Some(id) = path_id::<DeliveryId>(raw) else {
                continue;
            };
            let auth = WebhooksAuth(session.scope.clone());
            if DeliveriesApi
                .retrigger(auth, Data(state), ApiPath(id))
                .await
                .is_ok()
            {
                restarted += 1;
            }
        }
    }
    let noun = if restarted == 1 {
        "delivery"
    } else {
        "deliveries"
    };
    let body = html! {
        (result(&format!("Re-triggered {restarted} {noun}")))
        p { a href="/admin/dead-letters" { "Back to the dead letters" } }
    };
    html_response(StatusCode::OK, page(&session, title, body))
}
