//! The API's error enum, mapped once to `application/problem+json` (RFC 9457) with a stable `code`.

use std::sync::LazyLock;

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use serde::Serialize;

use super::code::ProblemCode;
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

/// Whether `e` comes from a database that cannot be reached or refuses our login for now (answered 503 +
/// `Retry-After`, code `database_unavailable`).
fn is_database_down(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(crate::db::errors::is_unavailable)
    })
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but lacking the named scope.
    #[error("this operation needs the {0} scope")]
    MissingScope(&'static str),
    /// A store's own credential on a route for platform operators.
    #[error("this operation is for platform operators")]
    OperatorOnly,
    /// 404: the resource does not exist in this store (the code names which kind).
    #[error("{1}")]
    NotFound(ProblemCode, String),
    /// 422: a request value is invalid (the code names the rule).
    #[error("{1}")]
    Invalid(ProblemCode, String),
    /// 409: the request conflicts with existing state.
    #[error("{1}")]
    Conflict(ProblemCode, String),
    /// 503: a dependency (the secret store) is unavailable; answered with `Retry-After`.
    #[error("{1}")]
    Unavailable(ProblemCode, String),
    /// Our bug or our infrastructure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The problem document (RFC 9457), `application/problem+json`.
#[derive(Debug, Serialize, poem_openapi::Object)]
pub struct Problem {
    /// `urn:ss3:problem:<code>`: the code as a URI (RFC 9457 `type`).
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the status.
    pub title: String,
    /// The HTTP status, repeated from the response.
    pub status: u16,
    /// What went wrong, for humans.
    pub detail: String,
    /// Stable machine-readable code; clients branch on it, never on `detail`.
    pub code: ProblemCode,
}

impl ApiError {
    /// The HTTP status and the stable code this error is answered with.
    pub fn status_and_code(&self) -> (StatusCode, ProblemCode) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized),
            Self::MissingScope(_) => (StatusCode::FORBIDDEN, ProblemCode::MissingScope),
            Self::OperatorOnly => (StatusCode::FORBIDDEN, ProblemCode::OperatorOnly),
            Self::NotFound(code, _) => (StatusCode::NOT_FOUND, *code),
            Self::Invalid(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            Self::Conflict(code, _) => (StatusCode::CONFLICT, *code),
            Self::Unavailable(code, _) => (StatusCode::SERVICE_UNAVAILABLE, *code),
            Self::Internal(e) if is_overload(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, ProblemCode::Overloaded)
            }
            Self::Internal(e) if is_database_down(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::DatabaseUnavailable,
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ProblemCode::InternalError,
            ),
        }
    }
}

/// A problem response for `status` and `code`; every 503 says when to come back (`Retry-After`).
pub fn problem_response(status: StatusCode, code: ProblemCode, detail: String) -> Response {
    let body = Problem {
        kind: format!("urn:ss3:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code,
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
            Self::Internal(e) if is_database_down(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the database is unavailable");
                format!("the database is unavailable; retry after {RETRY_AFTER_SECS} s")
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
        Self::from_database(&e).unwrap_or_else(|| Self::Internal(e.into()))
    }
}

impl ApiError {
    /// The client's error, when the database refused a value of the request (see `db::errors::classify`).
    fn from_database(e: &sqlx::Error) -> Option<Self> {
        Some(match classify(e)? {
            Conflict::AlreadyExists(code) => Self::Conflict(code, "already exists".into()),
            Conflict::Invalid(code) => {
                Self::Invalid(code, "a value was refused by a constraint".into())
            }
            Conflict::Data(code) => {
                // Logged: a typed request field should have refused this before the database saw it.
                tracing::warn!(error = %e, "the database refused a request value");
                Self::Invalid(code, "a value in the request cannot be stored".into())
            }
        })
    }
}

impl From<anyhow::Error> for ApiError {
    /// A database refusal anywhere in the chain is still the client's error (components return `anyhow`).
    fn from(e: anyhow::Error) -> Self {
        e.chain()
            .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .and_then(Self::from_database)
            .unwrap_or(Self::Internal(e))
    }
}

/// The statuses a route can answer with a problem document, as bits of the `S` in [`Problems<S>`].
pub mod can {
    /// 400: a parameter or the body does not parse (wrong type, malformed JSON or form).
    pub const BAD_REQUEST: u32 = 1;
    /// 401: no or unknown credentials.
    pub const UNAUTHORIZED: u32 = 1 << 1;
    /// 403: a missing scope, or an operator-only route called with a store credential.
    pub const FORBIDDEN: u32 = 1 << 2;
    /// 404: the resource named in the path does not exist in the caller's store.
    pub const NOT_FOUND: u32 = 1 << 3;
    /// 409: the resource's state does not allow it.
    pub const CONFLICT: u32 = 1 << 4;
    /// 411: a chunked body without `Content-Length`.
    pub const LENGTH_REQUIRED: u32 = 1 << 5;
    /// 413: the body is over the size limit.
    pub const TOO_LARGE: u32 = 1 << 6;
    /// 415: the body is not of the documented media type.
    pub const MEDIA_TYPE: u32 = 1 << 7;
    /// 422: well-formed, but a value is invalid (the `code` says which rule).
    pub const INVALID: u32 = 1 << 8;
    /// 429: too many requests.
    pub const TOO_MANY: u32 = 1 << 9;
    /// 503: a dependency (secret store, database) is unavailable or the service is shedding load.
    pub const UNAVAILABLE: u32 = 1 << 10;

    /// A caller authenticated by `StoreAuth`: unparsable parameters, no credentials, a missing scope, a bad
    /// `X-SS3-Store-Id`, an unavailable dependency.
    pub const STORE_CALLER: u32 = BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | INVALID | UNAVAILABLE;
    /// A caller authenticated by `OperatorAuth`: unparsable parameters, no or a store's credentials, an unavailable
    /// dependency.
    pub const OPERATOR_CALLER: u32 = BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | UNAVAILABLE;
    /// A caller authenticated by `CallerAuth` (any store's credential or the operator): no or unknown credentials,
    /// an unavailable dependency.
    pub const ANY_CALLER: u32 = UNAUTHORIZED | UNAVAILABLE;
    /// Any POST, PUT or PATCH: the body-size middleware answers before the route.
    pub const POSTS: u32 = LENGTH_REQUIRED | TOO_LARGE;
    /// A route with a JSON body: [`POSTS`], malformed JSON, another media type.
    pub const JSON_BODY: u32 = POSTS | BAD_REQUEST | MEDIA_TYPE;
}

/// (bit, status, description) of every status [`Problems`] can document.
const STATUSES: [(u32, u16, &str); 11] = [
    (
        can::BAD_REQUEST,
        400,
        "A parameter or the body does not parse",
    ),
    (can::UNAUTHORIZED, 401, "No or unknown credentials"),
    (can::FORBIDDEN, 403, "The credentials do not allow this"),
    (can::NOT_FOUND, 404, "No such resource in this store"),
    (
        can::CONFLICT,
        409,
        "The resource's state does not allow this",
    ),
    (can::LENGTH_REQUIRED, 411, "A body without Content-Length"),
    (can::TOO_LARGE, 413, "The body is over the size limit"),
    (
        can::MEDIA_TYPE,
        415,
        "The body is not of the documented media type",
    ),
    (
        can::INVALID,
        422,
        "A value is invalid; `code` names the rule",
    ),
    (
        can::TOO_MANY,
        429,
        "Too many requests; retry after `Retry-After` seconds",
    ),
    (
        can::UNAVAILABLE,
        503,
        "A dependency is unavailable or the service sheds load; retry later",
    ),
];

/// A route's error type: an [`ApiError`] whose OpenAPI metadata documents each status in `S` (bits of [`can`]) as
/// `application/problem+json` with the [`Problem`] schema. Handlers return `Result<T, Problems<{ … }>>`, so the
/// document lists what a route can answer without per-route copies of the error responses.
#[derive(Debug)]
pub struct Problems<const S: u32>(pub ApiError);

impl<const S: u32> From<ApiError> for Problems<S> {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl<const S: u32> From<sqlx::Error> for Problems<S> {
    fn from(e: sqlx::Error) -> Self {
        Self(e.into())
    }
}

impl<const S: u32> From<Problems<S>> for poem::Error {
    fn from(p: Problems<S>) -> Self {
        p.0.into()
    }
}

/// Each documented status's description followed by the stable codes an answer with that status can carry, so the
/// OpenAPI document states every status and its codes.
static DESCRIPTIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    STATUSES
        .iter()
        .map(|&(_, status, description)| {
            let codes: Vec<String> = ProblemCode::for_status(status)
                .map(|c| format!("`{c}`"))
                .collect();
            format!("{description}. `code`: {}", codes.join(", "))
        })
        .collect()
});

impl<const S: u32> ApiResponse for Problems<S> {
    fn meta() -> MetaResponses {
        let responses = STATUSES
            .iter()
            .zip(DESCRIPTIONS.iter())
            .filter(|((bit, ..), _)| S & bit != 0)
            .map(|(&(_, status, _), description)| MetaResponse {
                description: description.as_str(),
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/problem+json",
                    schema: Problem::schema_ref(),
                }],
                headers: if matches!(status, 429 | 503) {
                    vec![MetaHeader {
                        name: "Retry-After".into(),
                        description: Some("Seconds to wait before retrying".into()),
                        required: status == 503,
                        deprecated: false,
                        schema: u32::schema_ref(),
                    }]
                } else {
                    vec![]
                },
            })
            .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Turns errors raised outside our handlers (bad JSON, missing auth header, unknown route) into problem JSON too.
pub async fn catch_all(err: poem::Error) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    if let Some(code) = typed_field_refusal(&err) {
        return problem_response(StatusCode::UNPROCESSABLE_ENTITY, code, err.to_string());
    }
    let status = err.status();
    let code = ProblemCode::for_poem_status(status);
    let detail = if status.is_server_error() {
        "internal error".to_owned()
    } else {
        err.to_string()
    };
    problem_response(status, code, detail)
}

/// The stable code of a request field or parameter that one of the typed strings (`api::types`) refused.
fn typed_field_refusal(err: &poem::Error) -> Option<ProblemCode> {
    use poem_openapi::error::{ParseParamError, ParseRequestPayloadError};
    let reason = match (
        err.downcast_ref::<ParseRequestPayloadError>(),
        err.downcast_ref::<ParseParamError>(),
    ) {
        (Some(e), _) => &e.reason,
        (_, Some(e)) => &e.reason,
        _ => return None,
    };
    super::types::refusal_code(reason)
}

#[cfg(test)]
mod tests {
    use poem::error::ResponseError;

    use super::*;

    #[test]
    fn every_documented_status_names_the_codes_it_can_carry() {
        let meta = Problems::<{ can::NOT_FOUND | can::UNAVAILABLE }>::meta();
        let not_found = &meta.responses[0];
        assert_eq!(not_found.status, Some(404));
        for code in ["subscription_not_found", "connector_job_not_found"] {
            assert!(not_found.description.contains(code), "{code}");
        }
        let unavailable = &meta.responses[1];
        assert!(unavailable.description.contains("secret_store_unavailable"));
        assert!(
            unavailable
                .headers
                .iter()
                .any(|h| h.name == "Retry-After" && h.required)
        );
    }

    #[test]
    fn every_503_answer_carries_retry_after() {
        let errors = [
            ApiError::Unavailable(ProblemCode::SecretStoreUnavailable, "down".into()),
            ApiError::Internal(anyhow::Error::new(sqlx::Error::PoolTimedOut)),
            ApiError::Internal(anyhow::Error::new(sqlx::Error::PoolClosed)),
        ];
        for e in errors {
            let response = e.as_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers().get("retry-after").map(|v| v.as_bytes()),
                Some(RETRY_AFTER_SECS.to_string().as_bytes())
            );
        }
    }
}
