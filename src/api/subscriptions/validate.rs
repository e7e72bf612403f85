//! The request rules of subscriptions: event patterns and target URLs.

use std::sync::LazyLock;

use workflows::EventPattern;
use workflows::lanes::LaneLimits;

use crate::api::AppState;
use crate::api::code::ProblemCode;
use crate::api::problem::ApiError;
use crate::delivery::target::{TargetError, TargetUrl};

/// The event filter to store: 1-100 event names or patterns, normalised, without duplicates.
pub(super) fn valid_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() || events.len() > 100 {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidEventType,
            "events must list 1-100 event names or patterns".into(),
        ));
    }
    let mut out = Vec::with_capacity(events.len());
    for raw in events {
        let pattern = EventPattern::parse(raw.trim())
            .map_err(|e| ApiError::Invalid(ProblemCode::InvalidEventType, e.to_string()))?;
        if !out.iter().any(|p: &String| p == pattern.as_str()) {
            out.push(pattern.as_str().to_owned());
        }
    }
    Ok(out)
}

/// A warning for each of `events` (stored patterns) that selects no type of the event catalog: subscribing to it is
/// allowed, since the platform may emit types the catalog does not list yet, but it is more likely a typo.
pub(super) fn catalog_warnings(events: &[String]) -> Vec<String> {
    workflows::event_types::unknown_patterns(events)
        .into_iter()
        .map(|p| {
            if p.ends_with('*') {
                format!(
                    "event pattern `{p}` matches no type in the event catalog (GET /event-types)"
                )
            } else {
                format!("event type `{p}` is not in the event catalog (GET /event-types)")
            }
        })
        .collect()
}

/// A subscription's own limit of attempts in flight, within the operator's bounds.
pub(super) fn valid_max_in_flight(limits: &LaneLimits, raw: u32) -> Result<i32, ApiError> {
    if !limits.allows(raw) {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidMaxInFlight,
            format!("maxInFlight must be 1-{}", limits.max_in_flight),
        ));
    }
    Ok(i32::try_from(raw).unwrap_or(i32::MAX))
}

/// Most deliveries per second a subscription may ask for.
pub const MAX_PER_SECOND: f64 = 10_000.0;

/// A subscription's rate limit, checked: more than 0, at most [`MAX_PER_SECOND`].
pub(super) fn valid_max_per_second(raw: f64) -> Result<f64, ApiError> {
    if !(raw > 0.0 && raw <= MAX_PER_SECOND) {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidMaxPerSecond,
            format!("maxPerSecond must be more than 0 and at most {MAX_PER_SECOND}"),
        ));
    }
    Ok(raw)
}

/// The target URLs this API accepts, as the OpenAPI document states them: `http(s)://`, a host name whose last label
/// starts with a letter, an IPv4 address or a bracketed IPv6 address (RFC 3986's grammar), an optional port, then
/// RFC 3986 path and query characters. Narrower than what a WHATWG parser accepts, on purpose: a document cannot
/// state the WHATWG language, and a receiver URL needs none of the rest (user info, fragments, Unicode hosts).
pub fn target_url_pattern() -> &'static str {
    static PATTERN: LazyLock<String> = LazyLock::new(|| {
        let octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
        let ipv4 = format!("({octet}\\.){{3}}{octet}");
        let h16 = "[0-9A-Fa-f]{1,4}";
        let ls32 = format!("({h16}:{h16}|{ipv4})");
        let ipv6 = [
            format!("({h16}:){{6}}{ls32}"),
            format!("::({h16}:){{5}}{ls32}"),
            format!("({h16})?::({h16}:){{4}}{ls32}"),
            format!("(({h16}:){{0,1}}{h16})?::({h16}:){{3}}{ls32}"),
            format!("(({h16}:){{0,2}}{h16})?::({h16}:){{2}}{ls32}"),
            format!("(({h16}:){{0,3}}{h16})?::{h16}:{ls32}"),
            format!("(({h16}:){{0,4}}{h16})?::{ls32}"),
            format!("(({h16}:){{0,5}}{h16})?::{h16}"),
            format!("(({h16}:){{0,6}}{h16})?::"),
        ]
        .join("|");
        let label = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?";
        let name = format!("({label}\\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?");
        let port =
            "(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?";
        let path = "(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?";
        format!("^[Hh][Tt][Tt][Pp][Ss]?://({name}|{ipv4}|\\[({ipv6})\\]){port}{path}$")
    });
    &PATTERN
}

/// Whether `raw` matches [`target_url_pattern`].
fn documented_target(raw: &str) -> bool {
    static PATTERN: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(target_url_pattern()).ok());
    PATTERN.as_ref().is_some_and(|p| p.is_match(raw))
}

/// The target URL to store: of the documented shape, parsed, and allowed by the target policy.
pub(super) async fn valid_target(state: &AppState, raw: &str) -> Result<String, ApiError> {
    if !documented_target(raw) {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidTargetUrl,
            "target_url must be http(s)://host[:port][/path][?query] with a DNS name or IP address"
                .into(),
        ));
    }
    let url = TargetUrl::parse(raw)
        .map_err(|e| ApiError::Invalid(ProblemCode::InvalidTargetUrl, e.to_string()))?;
    url.check(&state.target_policy).await.map_err(|e| match e {
        TargetError::Invalid(_) => ApiError::Invalid(ProblemCode::InvalidTargetUrl, e.to_string()),
        TargetError::NotAllowed(_) => {
            ApiError::Invalid(ProblemCode::TargetNotAllowed, e.to_string())
        }
    })?;
    Ok(url.as_str().to_owned())
}
