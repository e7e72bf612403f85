//! Credentials of the store (operators, as in the API): list, create (the secret shown once), deactivate/reactivate,
//! rotate with an optional grace period.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, Route, get, handler, post};
use poem_openapi::param::{Header, Path as ApiPath, Query as ApiQuery};
use poem_openapi::payload::Json;
use poem_openapi::types::ParseFromJSON;
use serde_json::json;
use workflows::credentials::SCOPES;
use workflows::ids::CredentialId;

use super::{path_id, refusal, when};
use crate::admin::form::Form;
use crate::admin::layout::{
    csrf_field, error, html_response, not_found, page, result, secret_once, see_other,
};
use crate::admin::session::Session;
use crate::admin::{or_answer, posted_operator, signed_in_operator, state};
use crate::api::auth::OperatorStoreAuth;
use crate::api::credentials::{CreateCredential, Issued, IssuedCredential, ManageApi, Rotate};

/// `/admin/credentials/...`.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(list).post(create))
        .at("/:id/:action", post(act))
}

fn create_form(session: &Session) -> Markup {
    html! {
        h2 { "New credential" }
        form #credential-form.stack method="post" action="/admin/credentials" {
            (csrf_field(session))
            label { "Name" input type="text" name="name" required maxlength="200"; }
            label { "Type" select name="credential_type" {
                option value="API_KEY" { "API key" } option value="OAUTH_CLIENT" { "OAuth 2.0 client" } } }
            fieldset { legend { "Scopes" }
                @for (scope, description) in SCOPES {
                    label { input type="checkbox" name="scopes" value=(scope); code { (scope) } span.muted { " — " (description) } }
                } }
            label { "Expires on (optional, UTC midnight)" input type="date" name="expires_at"; }
            button #create-credential type="submit" { "Create" }
        }
    }
}

/// `GET /admin/credentials`.
#[handler]
pub async fn list(req: &Request) -> Response {
    let session = or_answer!(signed_in_operator(req).await);
    let auth = OperatorStoreAuth(session.scope.clone());
    let creds = match ManageApi
        .list(auth, Data(state(req)), ApiQuery(None), ApiQuery(Some(200)))
        .await
    {
        Ok(Json(p)) => p.items,
        Err(e) => return refusal(&session, "Credentials", &e.0),
    };
    let body = html! {
        div.table-wrap { table #credentials {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Scopes" }
                th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Actions" } } }
            tbody { @for c in &creds { @let base = format!("/admin/credentials/{}", c.credential_id);
                tr data-credential-id=(c.credential_id) {
                    td.name { (c.name) } td.type { (c.kind) } td.scopes { (c.scopes.join(", ")) }
                    td.last-used { (c.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                    td.expires { (c.expires_at.map(when).unwrap_or_else(|| "never".into())) }
                    td.active { (if c.is_active { "active" } else { "inactive" }) }
                    td {
                        @if c.is_active {
                            form.inline.deactivate method="post" action=(format!("{base}/deactivate")) { (csrf_field(&session)) button.secondary type="submit" { "Deactivate" } }
                        } @else {
                            form.inline.reactivate method="post" action=(format!("{base}/reactivate")) { (csrf_field(&session)) button.secondary type="submit" { "Reactivate" } }
                        }
                        " "
                        form.inline.rotate method="post" action=(format!("{base}/rotate")) {
                            (csrf_field(&session))
                            label { "Grace (s) " input type="number" name="grace_seconds" min="0" max="604800" size="7"; }
                            " " button.secondary type="submit" { "Rotate" }
                        }
                    }
                } } }
        } }
        (create_form(&session))
    };
    html_response(StatusCode::OK, page(&session, "Credentials", body))
}

fn issued_page(session: &Session, title: &str, issued: &IssuedCredential) -> Response {
    let body = html! {
        (result(&format!("Credential “{}” ({}).", issued.credential.name, issued.credential.kind)))
        @if let Some(key) = &issued.api_key { (secret_once("credential-secret", "API key", key)) }
        @if let Some(secret) = &issued.client_secret {
            p { "Client id " code #client-id { (issued.client_id.clone().unwrap_or_default()) } }
            (secret_once("credential-secret", "Client secret", secret))
        }
        p { a href="/admin/credentials" { "Back to the credentials" } }
    };
    html_response(StatusCode::OK, page(session, title, body))
}

/// `POST /admin/credentials`.
#[handler]
pub async fn create(req: &Request, body: Body) -> Response {
    let (session, form) = or_answer!(posted_operator(req, body).await);
    let expires = form.text("expires_at").map(|d| format!("{d}T00:00:00Z"));
    let doc = json!({
        "name": form.get("name").unwrap_or_default(),
        "type": form.get("credential_type").unwrap_or("API_KEY"),
        "scopes": form.all("scopes"),
        "expiresAt": expires,
    });
    let invalid = |m: String| {
        html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &session,
                "Credentials",
                html! { (error(&m)) (create_form(&session)) },
            ),
        )
    };
    let parsed = match CreateCredential::parse_from_json(Some(doc)) {
        Ok(p) => p,
        Err(e) => return invalid(e.into_message()),
    };
    let auth = OperatorStoreAuth(session.scope.clone());
    match ManageApi
        .create(
            auth,
            Data(state(req)),
            Json(parsed),
            Header(Some("admin panel".into())),
        )
        .await
    {
        Ok(Issued::Created(Json(issued))) => issued_page(&session, "Credential created", &issued),
        Err(e) if e.0.status_and_code().0 == StatusCode::UNPROCESSABLE_ENTITY => {
            invalid(e.0.to_string())
        }
        Err(e) => refusal(&session, "Credentials", &e.0),
    }
}

/// `POST /admin/credentials/:id/{deactivate,reactivate,rotate}`.
#[handler]
pub async fn act(
    req: &Request,
    Path((raw, action)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (session, form): (Session, Form) = or_answer!(posted_operator(req, body).await);
    let Some(id) = path_id::<CredentialId>(&raw) else {
        return not_found(&session);
    };
    let auth = OperatorStoreAuth(session.scope.clone());
    let state = Data(state(req));
    let outcome = match action.as_str() {
        "deactivate" => ManageApi
            .deactivate(auth, state, ApiPath(id))
            .await
            .map(|_| None)
            .map_err(|e| e.0),
        "reactivate" => ManageApi
            .reactivate(auth, state, ApiPath(id))
            .await
            .map(|_| None)
            .map_err(|e| e.0),
        "rotate" => {
            let grace = form
                .text("grace_seconds")
                .and_then(|g| g.parse::<u32>().ok());
            let body = Json(Rotate {
                grace_seconds: grace,
            });
            ManageApi
                .rotate(auth, state, ApiPath(id), body)
                .await
                .map(|j| Some(j.0))
                .map_err(|e| e.0)
        }
        _ => return not_found(&session),
    };
    match outcome {
        Ok(None) => see_other("/admin/credentials"),
        Ok(Some(issued)) => issued_page(&session, "Credential rotated", &issued),
        Err(e) => refusal(&session, "Credentials", &e),
    }
}
