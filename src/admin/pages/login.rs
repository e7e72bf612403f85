//! Sign-in (a store API key with `webhooks:manage`, or the operator token and a store) and sign-out.

use maud::html;
use poem::http::{StatusCode, header};
use poem::{Body, Request, Response, handler};
use workflows::StoreId;
use workflows::credentials::SCOPES;

use crate::admin::form::Form;
use crate::admin::layout::{bare_page, error, html_response, see_other};
use crate::admin::session::{self, SignIn};
use crate::admin::{or_answer, posted, state, unavailable};
use crate::api::auth::is_operator;
use crate::api::subscriptions::SCOPE;

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    html_response(
        status,
        bare_page(
            "Sign in",
            html! {
                @if let Some(m) = message { (error(m)) }
                form #login-form.stack method="post" action="/admin/login" {
                    h2 { "Store admin" }
                    label { "API key" input type="password" name="api_key" autocomplete="off"; }
                    p.muted { "A key of your store holding " code { (SCOPE) } "." }
                    button #sign-in type="submit" name="as" value="store" { "Sign in" }
                    h2 { "Platform operator" }
                    label { "Operator token" input type="password" name="operator_token" autocomplete="off"; }
                    label { "Store" input type="text" name="store_id" autocomplete="off"; }
                    button #operator-sign-in type="submit" name="as" value="operator" { "Sign in as operator" }
                }
            },
        ),
    )
}

/// `GET /admin/login`.
#[handler]
pub async fn show(req: &Request) -> Response {
    match session::current(&state(req).pool, req).await {
        Ok(Some(_)) => see_other("/admin"),
        _ => login_page(StatusCode::OK, None),
    }
}

/// Who the form's fields sign in, or the page to answer with.
async fn who(req: &Request, form: &Form) -> Result<SignIn, Response> {
    let state = state(req);
    if let Some(token) = form.text("operator_token") {
        if !is_operator(state, token) {
            return Err(login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong operator token."),
            ));
        }
        let store_id = StoreId::parse(form.text("store_id").unwrap_or_default()).map_err(|e| {
            login_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&format!("Store: {e}")),
            )
        })?;
        let scopes = SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect();
        return Ok(SignIn {
            store_id,
            credential_id: None,
            scopes,
        });
    }
    let key = form
        .text("api_key")
        .ok_or_else(|| login_page(StatusCode::UNPROCESSABLE_ENTITY, Some("Enter an API key.")))?;
    let grant = match state.validator.validate(key).await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            return Err(login_page(
                StatusCode::UNAUTHORIZED,
                Some("This API key is not valid."),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "admin sign-in: validation unavailable");
            return Err(login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Try again shortly."),
            ));
        }
    };
    if !grant.scopes.iter().any(|s| s == SCOPE) {
        let m = format!("This key does not hold {SCOPE}: it cannot manage webhooks.");
        return Err(login_page(StatusCode::FORBIDDEN, Some(&m)));
    }
    let store_id = StoreId::parse(&grant.store_id)
        .map_err(|_| login_page(StatusCode::UNAUTHORIZED, Some("This API key is not valid.")))?;
    Ok(SignIn {
        store_id,
        credential_id: Some(grant.credential_id),
        scopes: grant.scopes,
    })
}

/// `POST /admin/login`: a session and its cookie, then the overview.
#[handler]
pub async fn submit(req: &Request, body: Body) -> Response {
    let form = or_answer!(Form::read(body).await);
    let who = or_answer!(who(req, &form).await);
    let state = state(req);
    let id = match session::open(&state.pool, &who, state.admin.session_ttl_secs).await {
        Ok(id) => id,
        Err(e) => return unavailable(&e),
    };
    let mut r = see_other("/admin");
    let cookie = session::set_cookie(&id, session::is_https(req), state.admin.session_ttl_secs);
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /admin/logout`: the session is revoked (its cookie is worthless from now on) and cleared.
#[handler]
pub async fn logout(req: &Request, body: Body) -> Response {
    let (session, _) = or_answer!(posted(req, body).await);
    if let Err(e) = session::revoke(&state(req).pool, &session).await {
        return unavailable(&e);
    }
    let mut r = see_other("/admin/login");
    if let Ok(v) = session::set_cookie("", session::is_https(req), 0).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
