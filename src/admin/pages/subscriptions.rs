//! A subscription's pages: create (the signing secret shown once), view and edit, activate/deactivate, delete with
//! confirmation, send a test webhook (the catalog's example of a type) and follow it.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, Route, get, handler, post};
use poem_openapi::payload::Json;
use poem_openapi::types::ParseFromJSON;
use serde_json::{Value, json};
use workflows::event_types;
use workflows::ids::SubscriptionId;

use super::{path_id, refusal, when};
use crate::admin::form::Form;
use crate::admin::layout::{
    csrf_field, error, html_response, not_found, page, secret_once, see_other,
};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted, signed_in, state};
use crate::api::auth::WebhooksAuth;
use crate::api::subscriptions::{
    CreateSubscription, Created, MAX_GRACE_SECS, Subscription, SubscriptionsApi,
    UpdateSubscription, UpdatedSubscription, rotate, send_test,
};

/// `/admin/subscriptions/...`.
pub fn routes() -> Route {
    Route::new()
        .at("/", post(create))
        .at("/new", get(new))
        .at("/:id", get(show).post(update))
        .at("/:id/active", post(toggle))
        .at("/:id/delete", post(delete))
        .at("/:id/test", post(test))
        .at("/:id/rotate-secret", post(rotate_secret))
        .at("/:id/stats", get(super::stats::subscription))
}

/// The subscription form, filled with `name`, `target`, `events`.
fn subscription_form(
    session: &Session,
    action: &str,
    name: &str,
    target: &str,
    events: &[String],
) -> Markup {
    let extra: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| event_types::get(e).is_none())
        .collect();
    html! {
        form #subscription-form.stack method="post" action=(action) {
            (csrf_field(session))
            label { "Name" input type="text" name="name" value=(name) required maxlength="200"; }
            label { "Target URL" input type="url" name="target_url" value=(target) required; }
            fieldset {
                legend { "Events" }
                @for entry in event_types::all() {
                    @let t = entry.event_type.as_str();
                    label {
                        input type="checkbox" name="events" value=(t) id=(format!("event-{}", t.replace('.', "-")))
                            checked[events.iter().any(|e| e == t)];
                        code { (t) } span.muted { " — " (entry.description) }
                    }
                }
            }
            label { "Other event types or patterns (comma-separated; wildcards such as order.* allowed)"
                input type="text" name="extra_events" value=(extra.join(", ")); }
            button #save-subscription type="submit" { "Save" }
        }
    }
}

/// The event patterns a form names (checked types, then the free ones).
fn form_events(form: &Form) -> Vec<String> {
    let mut events: Vec<String> = form.all("events").into_iter().map(str::to_owned).collect();
    for extra in form.get("extra_events").unwrap_or_default().split(',') {
        let extra = extra.trim();
        if !extra.is_empty() && !events.iter().any(|e| e == extra) {
            events.push(extra.to_owned());
        }
    }
    events
}

fn warnings(events: &[String]) -> Markup {
    let unknown = event_types::unknown_patterns(events);
    html! {
        @if !unknown.is_empty() {
            div #warnings role="status" {
                p { "Not in the event catalog (allowed, but nothing may ever match):" }
                ul { @for u in &unknown { li { code { (u) } } } }
            }
        }
    }
}

/// `GET /admin/subscriptions/new`.
#[handler]
pub async fn new(req: &Request) -> Response {
    let session = or_answer!(signed_in(req).await);
    let form = subscription_form(&session, "/admin/subscriptions", "", "", &[]);
    html_response(StatusCode::OK, page(&session, "New subscription", form))
}

/// A form page again with the refusal on top (the admin's input kept).
fn invalid(session: &Session, title: &str, action: &str, form: &Form, detail: &str) -> Response {
    let events = form_events(form);
    let name = form.get("name").unwrap_or_default();
    let target = form.get("target_url").unwrap_or_default();
    let body =
        html! { (error(detail)) (subscription_form(session, action, name, target, &events)) };
    html_response(StatusCode::UNPROCESSABLE_ENTITY, page(session, title, body))
}

/// `POST /admin/subscriptions`: create; the signing secret is on this page only.
#[handler]
pub async fn create(req: &Request, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let (title, action) = ("New subscription", "/admin/subscriptions");
    let events = form_events(&form);
    let doc = json!({
        "name": form.get("name").unwrap_or_default(),
        "targetUrl": form.get("target_url").unwrap_or_default().trim(),
        "events": events,
    });
    let parsed = match CreateSubscription::parse_from_json(Some(doc)) {
        Ok(p) => p,
        Err(e) => return invalid(&session, title, action, &form, &e.into_message()),
    };
    let auth = WebhooksAuth(session.scope.clone());
    let created = match SubscriptionsApi
        .create(auth, Data(state(req)), Json(parsed))
        .await
    {
        Ok(Created::Created(Json(c))) => c,
        Err(e) if e.0.status_and_code().0 == StatusCode::UNPROCESSABLE_ENTITY => {
            return invalid(&session, title, action, &form, &e.0.to_string());
        }
        Err(e) => return refusal(&session, title, &e.0),
    };
    let id = created.subscription.subscription_id;
    let body = html! {
        (crate::admin::layout::result(&format!("Subscription “{}” created.", created.subscription.name)))
        (secret_once("signing-secret", "Signing secret", &created.signing_secret))
        (warnings(&created.subscription.events))
        p { a #subscription-link href=(format!("/admin/subscriptions/{id}")) { "Go to the subscription" } }
    };
    html_response(StatusCode::OK, page(&session, "Subscription created", body))
}

async fn load(
    req: &Request,
    session: &Session,
    id: SubscriptionId,
) -> Result<Subscription, Response> {
    let auth = WebhooksAuth(session.scope.clone());
    match SubscriptionsApi
        .get(auth, Data(state(req)), poem_openapi::param::Path(id))
        .await
    {
        Ok(Json(s)) => Ok(s),
        Err(e) => Err(refusal(session, "Subscription", &e.0)),
    }
}

/// `GET /admin/subscriptions/:id`.
#[handler]
pub async fn show(req: &Request, Path(raw): Path<String>) -> Response {
    let session = or_answer!(signed_in(req).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    let s = or_answer!(load(req, &session, id).await);
    html_response(
        StatusCode::OK,
        page(&session, &s.name.clone(), details(&session, &s)),
    )
}

fn details(session: &Session, s: &Subscription) -> Markup {
    let id = s.subscription_id;
    let base = format!("/admin/subscriptions/{id}");
    html! {
        p { "Subscription " strong #subscription-name { (s.name) } " is "
            strong #subscription-status { (if s.is_active { "active" } else { "inactive" }) } "." }
        @if let Some(d) = &s.auto_disabled {
            p #auto-disabled role="status" { "Disabled by the service " (when(d.at)) ": " (d.reason)
                ". Activate it below once its receiver works again." }
        }
        p.muted { "Target " code { (s.target_url) } " · created " (when(s.created_at))
            " · delivery lane " (format!("{:?}", s.delivery_lane.state).to_lowercase())
            ", at most " (s.delivery_lane.in_flight_limit) " in flight" }
        (delivery_controls(s))
        p { a #stats-link href=(format!("{base}/stats")) { "Statistics" } " · "
            a #log-link href=(format!("/admin/deliveries?subscription_id={id}")) { "Delivery log" } }
        (warnings(&s.events))
        h2 { "Send a test webhook" }
        form #send-test.filters method="post" action=(format!("{base}/test")) {
            (csrf_field(session))
            label { "Event type" select name="event_type" {
                option value="" { "webhook.test (a ping)" }
                @for entry in event_types::all() { option value=(entry.event_type.as_str()) { (entry.event_type.as_str()) } }
            } }
            button #send-test-button type="submit" { "Send test webhook" }
        }
        h2 { "Edit" }
        (subscription_form(session, &base, &s.name, &s.target_url, &s.events))
        h2 { "Signing secret" }
        form #rotate-secret.filters method="post" action=(format!("{base}/rotate-secret")) {
            (csrf_field(session))
            label { "Old secret keeps signing for (seconds, at most 604800)"
                input type="number" name="grace_seconds" min="0" max="604800" value="86400"; }
            button.secondary type="submit" { "Rotate the signing secret" }
        }
        h2 { "Activity" }
        form #toggle-active method="post" action=(format!("{base}/active")) {
            (csrf_field(session))
            input type="hidden" name="active" value=(if s.is_active { "false" } else { "true" });
            button.secondary type="submit" { (if s.is_active { "Deactivate" } else { "Activate" }) }
        }
        h2 { "Delete" }
        form #delete-subscription method="post" action=(format!("{base}/delete")) {
            (csrf_field(session))
            label { input type="checkbox" name="confirm" value="yes" required;
                " Yes, delete this subscription (no more deliveries; its log is kept)" }
            " " button.secondary type="submit" { "Delete" }
        }
    }
}

async fn patch(
    req: &Request,
    session: &Session,
    id: SubscriptionId,
    doc: Value,
) -> Result<UpdatedSubscription, Response> {
    let parsed = UpdateSubscription::parse_from_json(Some(doc)).map_err(|e| {
        html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(session, "Subscription", error(&e.into_message())),
        )
    })?;
    let auth = WebhooksAuth(session.scope.clone());
    SubscriptionsApi
        .update(
            auth,
            Data(state(req)),
            poem_openapi::param::Path(id),
            Json(parsed),
        )
        .await
        .map(|j| j.0)
        .map_err(|e| refusal(session, "Subscription", &e.0))
}

/// `POST /admin/subscriptions/:id`: save the edit form.
#[handler]
pub async fn update(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    let doc = json!({
        "name": form.get("name").unwrap_or_default(),
        "targetUrl": form.get("target_url").unwrap_or_default().trim(),
        "events": form_events(&form),
    });
    let s = or_answer!(patch(req, &session, id, doc).await).subscription;
    let body = html! { (crate::admin::layout::result("Saved.")) (details(&session, &s)) };
    html_response(StatusCode::OK, page(&session, &s.name.clone(), body))
}

/// `POST /admin/subscriptions/:id/active`.
#[handler]
pub async fn toggle(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    let active = form.get("active") == Some("true");
    let updated = or_answer!(patch(req, &session, id, json!({ "isActive": active })).await);
    let Some(offer) = updated.retrigger_offer else {
        return see_other(&format!("/admin/subscriptions/{id}"));
    };
    // Activated after the service disabled it: offer its dead letters since it began failing.
    let s = updated.subscription;
    let body = html! {
        (crate::admin::layout::result("Activated."))
        form #retrigger-offer.filters method="post" action="/admin/dead-letters/retrigger" {
            (csrf_field(&session))
            input type="hidden" name="subscription_id" value=(id);
            input type="hidden" name="since" value=(offer.since.format(super::dead_letters::SINCE_FORMAT));
            p { (offer.dead_letters) " dead letters since it began failing (" (when(offer.since)) ")." }
            button #retrigger-offer-button type="submit" { "Re-trigger them" }
        }
        (details(&session, &s))
    };
    html_response(StatusCode::OK, page(&session, &s.name.clone(), body))
}

/// `POST /admin/subscriptions/:id/delete` (the confirmation box must be ticked).
#[handler]
pub async fn delete(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    if form.get("confirm") != Some("yes") {
        let body = error("Tick the confirmation box to delete the subscription.");
        return html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&session, "Delete", body),
        );
    }
    let auth = WebhooksAuth(session.scope.clone());
    match SubscriptionsApi
        .delete(auth, Data(state(req)), poem_openapi::param::Path(id))
        .await
    {
        Ok(_) => see_other("/admin"),
        Err(e) => refusal(&session, "Delete", &e.0),
    }
}

/// `POST /admin/subscriptions/:id/test`: send, then follow the delivery on its page.
#[handler]
pub async fn test(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    match send_test(
        state(req),
        &session.scope.store_id,
        id,
        form.text("event_type"),
    )
    .await
    {
        Ok(sent) => see_other(&format!("/admin/deliveries/{}", sent.delivery_id)),
        Err(e) => refusal(&session, "Send test webhook", &e),
    }
}

/// `POST /admin/subscriptions/:id/rotate-secret`: the new secret on this page only.
#[handler]
pub async fn rotate_secret(req: &Request, Path(raw): Path<String>, body: Body) -> Response {
    let (session, form) = or_answer!(posted(req, body).await);
    let Some(id) = path_id::<SubscriptionId>(&raw) else {
        return not_found(&session);
    };
    let grace = form
        .text("grace_seconds")
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or(0);
    if grace > MAX_GRACE_SECS {
        let body = error(&format!(
            "The grace is at most {MAX_GRACE_SECS} seconds (7 days)."
        ));
        return html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&session, "Rotate", body),
        );
    }
    match rotate(state(req), &session.scope.store_id, id, grace).await {
        Ok(r) => {
            let until = r.previous_valid_until.map_or_else(
                || "The previous secret no longer signs.".to_owned(),
                |t| format!("The previous secret also signs until {}.", when(t)),
            );
            let body = html! {
                (crate::admin::layout::result(&until))
                (secret_once("signing-secret", "New signing secret", &r.signing_secret))
                p { a #subscription-link href=(format!("/admin/subscriptions/{id}")) { "Back to the subscription" } }
            };
            html_response(
                StatusCode::OK,
                page(&session, "Signing secret rotated", body),
            )
        }
        Err(e) => refusal(&session, "Rotate", &e),
    }
}

/// A subscription's payload filter, rate limit and ordering, those it has (changed through the API).
fn delivery_controls(s: &Subscription) -> Markup {
    html! {
        @if let Some(filter) = &s.payload_filter {
            p #payload-filter { "Only events matching the payload filter " code { (filter) } " (change it through the API)" }
        }
        @if let Some(limit) = s.max_per_second {
            p #rate-limit { "At most " (limit) " deliveries per second (change it through the API)" }
        }
        @if let Some(ordering) = &s.ordering {
            p #ordering { "Delivered in order, one at a time "
                @match &ordering.key {
                    Some(key) => { "per value of " code { (&**key) } }
                    None => { "for the whole subscription" }
                }
                " (change it through the API)" }
        }
    }
}
