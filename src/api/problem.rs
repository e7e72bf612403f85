//! The API's error enum, mapped once to `application/problem+json` (RFC 9457) with a stable `code`.

use poem::Response;
use poem::http::StatusCode;
use serde::Serialize;

use crate::credentials::Overloaded;
use crate::db::errors::{Conflict, classify};

/// Seconds a client is asked to wait (`Retry-After`) after any 503: load shed, a pool out of connections, an
/// unavailable dependency.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Whether `e` is load shedding rather than a fault: the bcrypt gate was full, or no database connection freed up
/// within the role's acquire timeout. The API answers these with 503 + `Retry-After`, never 500.
fn is_overload(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<Overloaded>()
            || cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(|e| matches!(e, sqlx::Error::PoolTimedOut))
    })
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but lacking a scope.
    #[error("this operation needs the {0} scope")]
    MissingScope(&'static str),
    /// Operator-only endpoint.
    #[error("this operation is for platform operators")]
    OperatorOnly,
    /// The resource does not exist in this store.
    #[error("{1}")]
    NotFound(&'static str, String),
    /// A request value is invalid.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// It conflicts with existing state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// A dependency (secret store…) is unavailable.
    #[error("{1}")]
    Unavailable(&'static str, String),
    /// Our bug or our infrastructure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The problem document.
#[derive(Debug, Serialize, poem_openapi::Object)]
pub struct Problem {
    /// `urn:ss3:problem:<code>`.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the status.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for humans.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
}

impl ApiError {
    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::MissingScope(_) => (StatusCode::FORBIDDEN, "missing_scope"),
            Self::OperatorOnly => (StatusCode::FORBIDDEN, "operator_only"),
            Self::NotFound(code, _) => (StatusCode::NOT_FOUND, code),
            Self::Invalid(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::Conflict(code, _) => (StatusCode::CONFLICT, code),
            Self::Unavailable(code, _) => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Internal(e) if is_overload(e) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// A problem response for `status` and `code`; every 503 says when to come back (`Retry-After`).
pub fn problem_response(status: StatusCode, code: &str, detail: String) -> Response {
    let body = Problem {
        kind: format!("urn:ss3:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
    };
    let mut response = Response::builder()
        .status(status)
        .content_type("application/problem+json");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response = response.header("Retry-After", RETRY_AFTER_SECS.to_string());
    }
    response.body(serde_json::to_vec(&body).unwrap_or_default())
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn as_response(&self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match self {
            Self::Internal(e) if is_overload(e) => {
                tracing::debug!(error = %format!("{e:#}"), "request shed");
                format!("the service is busy; retry after {RETRY_AFTER_SECS} s")
            }
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                self.to_string()
            }
            _ => self.to_string(),
        };
        problem_response(status, code, detail)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match classify(&e) {
            Some(Conflict::AlreadyExists(code)) => Self::Conflict(code, "already exists".into()),
            Some(Conflict::Invalid(code)) => {
                Self::Invalid(code, "a value was refused by a constraint".into())
            }
            None => Self::Internal(e.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

/// Turns errors raised outside our handlers (bad JSON, missing auth header, unknown route) into problem JSON too.
pub async fn catch_all(err: poem::Error) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "invalid_request",
        _ => "internal_error",
    };
    let detail = if status.is_server_error() {
        "internal error".to_owned()
    } else {
        err.to_string()
    };
    problem_response(status, code, detail)
}
