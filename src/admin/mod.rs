//! The admin panel: server-rendered pages under `/admin` for store admins (signed in with a store API key that holds
//! `webhooks:manage`) and platform operators (the operator token and a store). Pages call the API's own functions
//! with the session's [`StoreScope`](crate::api::auth::StoreScope), so authorisation and business rules are the
//! API's; this module only renders. Assets are embedded; no CDN, no build step.

mod assets;
mod form;
mod layout;
mod pages;
pub mod session;

use poem::http::StatusCode;
use poem::{Body, Request, Response, Route, get, post};

use crate::api::AppState;
use form::Form;
use layout::{bare_page, error, html_response, see_other};
use session::Session;

/// The admin routes, to be nested under `/admin`.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(pages::overview::show))
        .at("/login", get(pages::login::show).post(pages::login::submit))
        .at("/logout", post(pages::login::logout))
        .at("/assets/:name", get(assets::serve))
        .nest("/subscriptions", pages::subscriptions::routes())
        .at("/stats", get(pages::stats::store))
        .nest("/deliveries", pages::deliveries::routes())
        .at("/dead-letters", get(pages::dead_letters::list))
        .at(
            "/dead-letters/retrigger",
            post(pages::dead_letters::retrigger),
        )
        .nest("/credentials", pages::credentials::routes())
        .at("/event-types", get(pages::operators::catalog))
        .nest("/connectors", pages::connectors::routes())
        .at("/quarantine", get(pages::operators::quarantine))
        .at("/outbox", get(pages::operators::outbox))
}

fn state(req: &Request) -> &AppState {
    req.data::<AppState>()
        .expect("the admin routes are served inside the API app, which carries AppState")
}

fn unavailable(e: &sqlx::Error) -> Response {
    tracing::warn!(error = %e, "admin page: database unavailable");
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        bare_page(
            "Unavailable",
            error("The database is not answering; try again shortly."),
        ),
    )
}

/// The signed-in admin of a page request, or the answer to give instead (sign-in, or 503).
async fn signed_in(req: &Request) -> Result<Session, Response> {
    match session::current(&state(req).pool, req).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(see_other("/admin/login")),
        Err(e) => Err(unavailable(&e)),
    }
}

/// The signed-in admin of a form post and its fields, with the CSRF token checked (403 when missing or wrong).
async fn posted(req: &Request, body: Body) -> Result<(Session, Form), Response> {
    let session = signed_in(req).await?;
    let form = Form::read(body).await?;
    if !session.csrf_ok(form.get("csrf")) {
        return Err(html_response(
            StatusCode::FORBIDDEN,
            bare_page(
                "Refused",
                error("The form's CSRF token is missing or wrong: reload the page and try again."),
            ),
        ));
    }
    Ok((session, form))
}

/// The signed-in operator of a page request (403 for a store admin).
async fn signed_in_operator(req: &Request) -> Result<Session, Response> {
    let session = signed_in(req).await?;
    if session.scope.operator {
        Ok(session)
    } else {
        Err(layout::operators_only(&session))
    }
}

/// The signed-in operator of a form post and its fields, CSRF checked (403 for a store admin).
async fn posted_operator(req: &Request, body: Body) -> Result<(Session, Form), Response> {
    let (session, form) = posted(req, body).await?;
    if session.scope.operator {
        Ok((session, form))
    } else {
        Err(layout::operators_only(&session))
    }
}

/// Unwrap a `Result<T, Response>` inside a handler that returns `Response`.
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}
use or_answer;
