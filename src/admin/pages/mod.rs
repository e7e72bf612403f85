//! One module per page family. Each page reads through the API's own handlers or repositories with the session's
//! scope and renders; refusals of the API are shown with their status and detail.

pub mod connectors;
pub mod credentials;
pub mod dead_letters;
pub mod deliveries;
mod headers;
pub mod login;
pub mod operators;
pub mod overview;
pub mod stats;
pub mod subscriptions;

use chrono::{DateTime, Utc};
use poem::Response;

use super::layout::refused;
use super::session::Session;
use crate::api::problem::ApiError;

/// An API refusal as a page (an internal error shows no detail, like the API's 500).
pub fn refusal(session: &Session, title: &str, e: &ApiError) -> Response {
    let (status, _) = e.status_and_code();
    refused(session, title, status, &e.to_string())
}

/// A typed id from a path segment (`None`: not a UUID; the page answers 404 as for an unknown id).
pub fn path_id<T: From<uuid::Uuid>>(raw: &str) -> Option<T> {
    raw.parse::<uuid::Uuid>().ok().map(T::from)
}

/// A query field, trimmed; `None` when absent or blank (a filter form sends its empty fields).
pub fn blank_none(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A time as the pages show it (UTC, to the second).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A share as a percentage, or a dash.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0))
}
