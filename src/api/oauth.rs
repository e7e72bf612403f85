//! `POST /oauth/token`: OAuth 2.0 client credentials grant (RFC 6749 §4.4), with the RFC's error format (§5.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use workflows::credentials::{is_client_id, requested_scopes};

use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::{AppState, Tag};

/// The token request (form-encoded). Client authentication: HTTP Basic, or `client_id` + `client_secret` here.
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    /// Space-separated subset of the client's scopes; absent: all of them.
    pub scope: Option<String>,
    /// Client id (when not using HTTP Basic).
    pub client_id: Option<String>,
    /// Client secret (when not using HTTP Basic).
    pub client_secret: Option<String>,
}

/// An issued access token.
#[derive(Debug, Object)]
pub struct AccessToken {
    /// Opaque bearer token (`ss3at_…`), for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// RFC 6749 §5.2 error.
#[derive(Debug, Object)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_scope` or `unsupported_grant_type`.
    pub error: String,
    /// What went wrong, for humans.
    pub error_description: String,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "unparsable")]
enum TokenResponse {
    /// The token was issued (`Cache-Control: no-store`, as RFC 6749 §5.1 requires).
    #[oai(status = 200)]
    Issued(
        Json<AccessToken>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
    /// Malformed request, unsupported grant type, or a scope the client does not have.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// Client authentication failed.
    #[oai(status = 401)]
    InvalidClient(Json<OAuthError>, #[oai(header = "WWW-Authenticate")] String),
}

fn bad(error: &str, description: impl Into<String>) -> TokenResponse {
    TokenResponse::BadRequest(
        Json(OAuthError {
            error: error.into(),
            error_description: description.into(),
        }),
        "no-store".into(),
    )
}

/// A form or header that does not parse is an RFC 6749 `invalid_request`, not a problem document: OAuth clients
/// read the §5.2 format on every 400 of the token endpoint.
fn unparsable(err: poem::Error) -> TokenResponse {
    bad("invalid_request", err.to_string())
}

fn invalid_client() -> TokenResponse {
    let body = OAuthError {
        error: "invalid_client".into(),
        error_description: "client authentication failed".into(),
    };
    TokenResponse::InvalidClient(Json(body), "Basic realm=\"integration-service\"".into())
}

/// `Basic base64(client_id:client_secret)`.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(B64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The OAuth resource.
pub struct OAuthApi;

#[OpenApi(tag = "Tag::Credentials")]
impl OAuthApi {
    /// Exchange client credentials for a short-lived access token.
    #[oai(path = "/oauth/token", method = "post")]
    async fn token(
        &self,
        state: Data<&AppState>,
        #[oai(name = "Authorization")] authorization: Header<Option<String>>,
        form: Form<TokenRequest>,
    ) -> Result<TokenResponse, Problems<{ POSTS | UNAVAILABLE }>> {
        let form = form.0;
        match form.grant_type.as_deref() {
            None => return Ok(bad("invalid_request", "grant_type is required")),
            Some("client_credentials") => {}
            Some(other) => {
                return Ok(bad(
                    "unsupported_grant_type",
                    format!("{other} is not supported; use client_credentials"),
                ));
            }
        }
        let basic = basic_credentials(authorization.0.as_deref());
        let (client_id, secret) = match (basic, form.client_id, form.client_secret) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Ok(bad(
                    "invalid_request",
                    "use one client authentication method",
                ));
            }
            (Some(pair), None, None) => pair,
            (None, Some(id), Some(secret)) => (id, secret),
            _ => return Ok(invalid_client()),
        };
        if !is_client_id(&client_id) {
            return Ok(invalid_client());
        }
        let Some(client) = state
            .validator
            .check_secret(&client_id, &secret)
            .await
            .map_err(ApiError::Internal)?
        else {
            return Ok(invalid_client());
        };
        let scopes = match requested_scopes(form.scope.as_deref(), &client.scopes) {
            Ok(scopes) => scopes,
            Err(why) => return Ok(bad("invalid_scope", why)),
        };
        let lifetime = std::time::Duration::from_secs(state.credentials.access_token_ttl_secs);
        let (token, _expires_at) = state
            .validator
            .issue_token(client.credential_id, &scopes, lifetime)
            .await
            .map_err(ApiError::Internal)?;
        let body = AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            // The token expires `lifetime` after the instant it was issued at (`issue_token` adds it to that
            // instant). Measuring against the clock again after the insert lost the time the insert took,
            // truncated to whole seconds: 3599 for a one-hour token.
            expires_in: lifetime.as_secs(),
            scope: scopes.join(" "),
        };
        Ok(TokenResponse::Issued(
            Json(body),
            "no-store".into(),
            "no-cache".into(),
        ))
    }
}
