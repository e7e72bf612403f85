//! Outbound connector jobs: how a channel's answer is classified, and what the job's state becomes.
//! The state machine is the shared one ([`crate::attempt`]): same schedule as webhooks (1 m, 5 m, 30 m, 2 h, then dead
//! letter); a refusal no retry can fix dead-letters at once.

use chrono::Duration;

use crate::attempt::Outcome;
use crate::delivery::DeliveryStatus;

/// Why a connector call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFailure {
    /// For the sync log and the dead-letter event.
    pub reason: String,
    /// The channel's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The channel's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// The channel refused the request itself (validation, permissions): retrying the same request cannot help.
    pub permanent: bool,
}

/// What a channel's HTTP status means for the call that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 401: the access token was refused; fetch a new one and count a retryable failure.
    Unauthorized,
    /// 408, 409 (eBay's concurrent-update conflict), 425, 429, 5xx: try again later.
    Retryable,
    /// Any other 4xx: the request is wrong for this channel.
    Permanent,
}

/// Classify an HTTP status from a channel.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        401 => StatusClass::Unauthorized,
        408 | 409 | 425 | 429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Permanent,
    }
}

/// The shared outcome of an attempt that ended with `failure` (`None`: success).
pub fn sync_outcome(failure: Option<&SyncFailure>) -> Outcome {
    match failure {
        None => Outcome::Succeeded,
        Some(f) => Outcome::Failed {
            retry_after: f.retry_after,
            permanent: f.permanent,
        },
    }
}

/// A connector job's status as the API and the database spell it (a delivered webhook is a succeeded sync).
pub fn job_status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Delivered => "SUCCEEDED",
        other => other.as_str(),
    }
}

/// Parse a connector job status as spelled by [`job_status_name`].
pub fn parse_job_status(raw: &str) -> Option<DeliveryStatus> {
    match raw {
        "SUCCEEDED" => Some(DeliveryStatus::Delivered),
        "DELIVERED" => None,
        other => DeliveryStatus::parse(other),
    }
}

/// The entity a domain event is about, for the sync log (`product.updated` → `product`).
pub fn entity_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{OutcomeDecision, decide};
    use chrono::{DateTime, Utc};

    fn decide_sync(
        attempt: u32,
        failure: Option<&SyncFailure>,
        at: DateTime<Utc>,
    ) -> OutcomeDecision {
        decide(attempt, &sync_outcome(failure), at)
    }

    fn failure(permanent: bool, retry_after: Option<Duration>) -> SyncFailure {
        SyncFailure {
            reason: "x".into(),
            status: Some(503),
            retry_after,
            permanent,
        }
    }

    #[test]
    fn statuses_are_classified_like_the_channels_document_them() {
        assert_eq!(classify_status(200), StatusClass::Success);
        assert_eq!(classify_status(207), StatusClass::Success);
        assert_eq!(classify_status(401), StatusClass::Unauthorized);
        for s in [408, 409, 429, 500, 503] {
            assert_eq!(classify_status(s), StatusClass::Retryable, "{s}");
        }
        for s in [400, 403, 404, 422] {
            assert_eq!(classify_status(s), StatusClass::Permanent, "{s}");
        }
    }

    #[test]
    fn retryable_failures_follow_the_webhook_schedule_then_dead_letter() {
        let now = Utc::now();
        let minutes = [1, 5, 30, 120];
        for (attempt, m) in (1..=4).zip(minutes) {
            let d = decide_sync(attempt, Some(&failure(false, None)), now);
            assert_eq!(d.status, DeliveryStatus::Failed);
            assert_eq!(d.next_retry_at, Some(now + Duration::minutes(m)));
        }
        let d = decide_sync(5, Some(&failure(false, None)), now);
        assert_eq!(d.status, DeliveryStatus::DeadLettered);
    }

    #[test]
    fn a_permanent_refusal_dead_letters_at_once_and_success_completes() {
        let now = Utc::now();
        assert!(decide_sync(1, Some(&failure(true, None)), now).dead_lettered);
        let ok = decide_sync(2, None, now);
        assert_eq!(
            (ok.status, ok.delivered_at),
            (DeliveryStatus::Delivered, Some(now))
        );
    }

    #[test]
    fn retry_after_delays_within_the_schedule() {
        let now = Utc::now();
        let d = decide_sync(1, Some(&failure(false, Some(Duration::seconds(120)))), now);
        assert_eq!(d.next_retry_at, Some(now + Duration::seconds(120)));
    }

    #[test]
    fn job_statuses_round_trip_and_helpers_parse() {
        for s in DeliveryStatus::ALL {
            assert_eq!(parse_job_status(job_status_name(s)), Some(s));
        }
        assert_eq!(parse_job_status("DELIVERED"), None);
        assert_eq!(entity_of("order.fulfilled"), "order");
    }
}
