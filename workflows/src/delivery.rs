//! Webhook deliveries: how a receiver's answer is classified and mapped into the shared attempt state machine
//! ([`crate::attempt`]).

use chrono::Duration;

use crate::attempt::Outcome;

/// A webhook delivery's status: the shared outbound attempt status.
pub use crate::attempt::AttemptStatus as DeliveryStatus;

/// Why an attempt failed, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The receiver answered with a status outside 2xx (redirects included: they are not followed).
    HttpStatus(u16),
    /// No answer within the total timeout.
    Timeout,
    /// Connection refused, reset, TLS failure, DNS failure…
    Connection(String),
    /// The target is not allowed (e.g. it resolved to a private address in production mode).
    TargetRefused(String),
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HttpStatus(code) => write!(f, "receiver answered HTTP {code}"),
            Self::Timeout => write!(f, "timed out"),
            Self::Connection(e) => write!(f, "connection failed: {e}"),
            Self::TargetRefused(e) => write!(f, "target refused: {e}"),
        }
    }
}

/// What one delivery attempt came to. `Err` in the shell is reserved for our own infrastructure failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx from the receiver.
    Delivered { status: u16, elapsed_ms: i64 },
    /// Anything else.
    Failed {
        reason: FailureReason,
        status: Option<u16>,
        elapsed_ms: i64,
        retry_after: Option<Duration>,
    },
}

impl AttemptOutcome {
    /// The shared outcome: a receiver's failure is never permanent (every failure is retried on the schedule).
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Delivered { .. } => Outcome::Succeeded,
            Self::Failed { retry_after, .. } => Outcome::Failed {
                retry_after: *retry_after,
                permanent: false,
            },
        }
    }

    /// Milliseconds from sending to the answer (or to the failure).
    pub fn elapsed_ms(&self) -> i64 {
        match self {
            Self::Delivered { elapsed_ms, .. } | Self::Failed { elapsed_ms, .. } => *elapsed_ms,
        }
    }
}

/// Whether an HTTP status counts as delivered.
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::OutcomeDecision;
    use chrono::{DateTime, Utc};

    fn decide(attempt: u32, outcome: &AttemptOutcome, at: DateTime<Utc>) -> OutcomeDecision {
        crate::attempt::decide(attempt, &outcome.outcome(), at)
    }

    fn failed() -> AttemptOutcome {
        AttemptOutcome::Failed {
            reason: FailureReason::HttpStatus(500),
            status: Some(500),
            elapsed_ms: 3,
            retry_after: None,
        }
    }

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DeliveryStatus::parse("delivered"), None);
    }

    #[test]
    fn success_delivers_and_stops_retrying() {
        let now = Utc::now();
        let d = decide(
            3,
            &AttemptOutcome::Delivered {
                status: 204,
                elapsed_ms: 1,
            },
            now,
        );
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.delivered_at, Some(now));
        assert_eq!(d.next_retry_at, None);
    }

    #[test]
    fn failure_before_the_fifth_attempt_schedules_a_retry() {
        let now = Utc::now();
        let d = decide(1, &failed(), now);
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.next_retry_at, Some(now + Duration::minutes(1)));
        assert!(!d.dead_lettered);
    }

    #[test]
    fn fifth_failure_dead_letters() {
        let d = decide(5, &failed(), Utc::now());
        assert_eq!(d.status, DeliveryStatus::DeadLettered);
        assert!(d.dead_lettered);
        assert_eq!(d.next_retry_at, None);
    }

    #[test]
    fn only_2xx_is_success() {
        assert!(is_success(200) && is_success(299));
        assert!(!is_success(199) && !is_success(301) && !is_success(500));
    }
}
