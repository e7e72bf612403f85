//! `POST /oauth/token`: OAuth 2.0 client credentials grant (RFC 6749 §4.4), with the RFC's error format (§5.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
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

/// The RFC 6749 §5.2 error codes this endpoint answers with (the token endpoint's own, not problem codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// The form is malformed, lacks `grant_type`, or uses two client authentication methods.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// A requested scope is not one the client has.
    InvalidScope,
    /// A grant type other than `client_credentials`.
    UnsupportedGrantType,
}

/// RFC 6749 §5.2 error.
#[derive(Debug, Object)]
pub struct OAuthError {
    /// The error code (RFC 6749 §5.2).
    pub error: OAuthErrorCode,
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

fn bad(error: OAuthErrorCode, description: impl Into<String>) -> TokenResponse {
    TokenResponse::BadRequest(
        Json(OAuthError {
            error,
            error_description: description.into(),
        }),
        "no-store".into(),
    )
}

/// A form or header that does not parse is an RFC 6749 `invalid_request`, not a problem document: OAuth clients
/// read the §5.2 format on every 400 of the token endpoint.
fn unparsable(err: poem::Error) -> TokenResponse {
    bad(OAuthErrorCode::InvalidRequest, err.to_string())
}

fn invalid_client() -> TokenResponse {
    let body = OAuthError {
        error: OAuthErrorCode::InvalidClient,
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

/// The client's id and secret from the request: the form's grant type must be `client_credentials`, and the client
/// authenticates one way (HTTP Basic, or the form's `client_id` + `client_secret`). `Err` is the answer to give.
fn client_credentials(
    authorization: Option<&str>,
    form: &TokenRequest,
) -> Result<(String, String), Box<TokenResponse>> {
    match form.grant_type.as_deref() {
        None => {
            return Err(Box::new(bad(
                OAuthErrorCode::InvalidRequest,
                "grant_type is required",
            )));
        }
        Some("client_credentials") => {}
        Some(other) => {
            return Err(Box::new(bad(
                OAuthErrorCode::UnsupportedGrantType,
                format!("{other} is not supported; use client_credentials"),
            )));
        }
    }
    let basic = basic_credentials(authorization);
    match (basic, form.client_id.clone(), form.client_secret.clone()) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Box::new(bad(
            OAuthErrorCode::InvalidRequest,
            "use one client authentication method",
        ))),
        (Some(pair), None, None) => Ok(pair),
        (None, Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(Box::new(invalid_client())),
    }
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
        let (client_id, secret) = match client_credentials(authorization.0.as_deref(), &form) {
            Ok(pair) => pair,
            Err(answer) => return Ok(*answer),
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
            Err(why) => return Ok(bad(OAuthErrorCode::InvalidScope, why)),
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
