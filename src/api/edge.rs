//! The HTTP edge, in front of every route: request bodies are limited (size and time) while they are read,
//! and an unsupported method answers 405 with the `Allow` header.
//!
//! Limits are enforced on the bytes as they arrive, not on what `Content-Length` claims, so a chunked body
//! (or any future protocol) cannot get past them: a body over its route's limit is refused with 413 as soon as
//! the limit is crossed, and one that takes too long with 408; both close the connection.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::time::Instant;

use super::code::ProblemCode;
use super::problem::problem_response;

/// Body limits of the API.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Every route but `POST /events`: JSON documents and forms.
    pub max_body_bytes: usize,
    /// `POST /events`: the same limit as a Kafka message.
    pub max_event_bytes: usize,
    /// The whole body must arrive within this time of the service starting to read it.
    pub read_timeout: Duration,
}

impl BodyLimits {
    /// The limit of a request's body.
    fn for_route(&self, method: &Method, path: &str) -> usize {
        if method == Method::POST && path == "/events" {
            self.max_event_bytes
        } else {
            self.max_body_bytes
        }
    }
}

/// Why the body guard stopped reading.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    TooLarge,
    TooSlow,
}

/// The edge: body limits and the `Allow` table.
pub struct Edge {
    limits: BodyLimits,
    allow: AllowTable,
}

impl Edge {
    /// The edge of the API described by the OpenAPI document `spec` (a JSON string).
    pub fn new(limits: BodyLimits, spec: &str) -> Self {
        Self {
            limits,
            allow: AllowTable::from_spec(spec),
        }
    }

    /// Run `req` through `ep` with its body guarded.
    pub async fn call<E: Endpoint>(&self, ep: &E, mut req: Request) -> poem::Result<Response> {
        let limit = self.limits.for_route(req.method(), req.uri().path());
        let declared = req
            .header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > limit as u64) {
            return Ok(too_large(format!("body of {n} bytes exceeds {limit}")));
        }
        let refused = Arc::new(OnceLock::new());
        let body = req.take_body();
        if !body.is_empty() {
            req.set_body(guarded(
                body,
                limit,
                self.limits.read_timeout,
                refused.clone(),
            ));
        }
        // A `Uri` clone shares its bytes: nothing is copied on the hot path.
        let uri = req.uri().clone();
        let result = ep.call(req).await;
        // Whatever the handler made of the failed read (poem-openapi calls it a bad payload), the edge's
        // reason is the true one.
        match (refused.get(), result) {
            (Some(Refusal::TooLarge), _) => Ok(too_large(format!("body exceeds {limit} bytes"))),
            (Some(Refusal::TooSlow), _) => Ok(closing(problem_response(
                StatusCode::REQUEST_TIMEOUT,
                ProblemCode::RequestTimeout,
                format!(
                    "the body did not arrive within {} ms",
                    self.limits.read_timeout.as_millis()
                ),
            ))),
            (None, Ok(resp)) => Ok(resp.into_response()),
            (None, Err(e)) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
                Ok(self.allow.method_not_allowed(uri.path()))
            }
            (None, Err(e)) => Err(e),
        }
    }
}

fn too_large(detail: String) -> Response {
    closing(problem_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        ProblemCode::PayloadTooLarge,
        detail,
    ))
}

/// The rest of a refused body is never read: the connection cannot carry another request.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

struct Guard<S> {
    inner: Pin<Box<S>>,
    seen: usize,
    deadline: Option<Instant>,
    done: bool,
}

/// `body`, failing once it exceeds `limit` bytes or has not ended `timeout` after its first read; `refused`
/// records why.
fn guarded(body: Body, limit: usize, timeout: Duration, refused: Arc<OnceLock<Refusal>>) -> Body {
    let guard = Guard {
        inner: Box::pin(body.into_bytes_stream()),
        seen: 0,
        deadline: None,
        done: false,
    };
    Body::from_bytes_stream(futures::stream::unfold(guard, move |mut g| {
        let refused = refused.clone();
        async move {
            if g.done {
                return None;
            }
            let deadline = *g.deadline.get_or_insert_with(|| Instant::now() + timeout);
            let item = match tokio::time::timeout_at(deadline, g.inner.next()).await {
                Err(_) => {
                    let _ = refused.set(Refusal::TooSlow);
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request body too slow",
                    ))
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => Err(e),
                Ok(Some(Ok(chunk))) => {
                    g.seen += chunk.len();
                    if g.seen > limit {
                        let _ = refused.set(Refusal::TooLarge);
                        Err(io::Error::other("request body too large"))
                    } else {
                        Ok(chunk)
                    }
                }
            };
            g.done = item.is_err();
            Some((item, g))
        }
    }))
}

/// The keys of an OpenAPI path item that are operations (the others are `parameters`, `summary`…).
const OPERATIONS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

/// The methods each path of the API answers, from its OpenAPI document.
struct AllowTable(Vec<(Vec<String>, String)>);

impl AllowTable {
    fn from_spec(spec: &str) -> Self {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut rows = vec![(segments("/openapi.json"), "GET, HEAD".to_owned())];
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut methods: BTreeSet<String> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_ascii_uppercase())
                .filter(|m| OPERATIONS.contains(&m.as_str()))
                .collect();
            if methods.contains("GET") {
                methods.insert("HEAD".into());
            }
            let methods: Vec<String> = methods.into_iter().collect();
            rows.push((segments(path), methods.join(", ")));
        }
        Self(rows)
    }

    /// 405 with `Allow` naming the methods of the path (a template segment `{id}` matches any segment).
    fn method_not_allowed(&self, path: &str) -> Response {
        let asked = segments(path);
        let allow = self
            .0
            .iter()
            .find(|(template, _)| {
                template.len() == asked.len()
                    && template.iter().zip(&asked).all(|(t, a)| {
                        t == a || (t.starts_with('{') && t.ends_with('}') && !a.is_empty())
                    })
            })
            .map(|(_, allow)| allow.as_str())
            .unwrap_or_default();
        let mut resp = problem_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::MethodNotAllowed,
            format!("allowed: {allow}"),
        );
        if let Ok(value) = HeaderValue::from_str(allow) {
            resp.headers_mut().insert(header::ALLOW, value);
        }
        resp
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let spec = r#"{"paths": {"/subscriptions/{id}": {"get": {}, "patch": {}, "delete": {}, "parameters": []},
                                  "/subscriptions": {"post": {}}}}"#;
        let table = AllowTable::from_spec(spec);
        let resp = table.method_not_allowed("/subscriptions/42");
        assert_eq!(
            resp.headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("DELETE, GET, HEAD, PATCH")
        );
        let resp = table.method_not_allowed("/subscriptions");
        assert_eq!(
            resp.headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("POST")
        );
    }
}
