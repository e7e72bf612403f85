//! Delivery states and the transition taken after each attempt.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::retry::{NextStep, next_step};

/// Status of a webhook delivery (stored as text with a CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (or a re-triggered one).
    Pending,
    /// The last attempt failed; the next one is due at `next_retry_at`.
    Failed,
    /// A receiver answered 2xx.
    Delivered,
    /// All attempts failed; an admin can re-trigger it.
    DeadLettered,
    /// Retries stopped because the subscription was deactivated or deleted; an admin can re-trigger it.
    Cancelled,
}

impl DeliveryStatus {
    /// All statuses, in the order the API documents them.
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Pending,
        Self::Failed,
        Self::Delivered,
        Self::DeadLettered,
        Self::Cancelled,
    ];

    /// The database and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Failed => "FAILED",
            Self::Delivered => "DELIVERED",
            Self::DeadLettered => "DEAD_LETTERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parse the database and API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether a queued attempt for a delivery in this status should still be made.
    pub fn awaits_attempt(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }
}

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

/// The state a delivery moves to after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeDecision {
    /// New status.
    pub status: DeliveryStatus,
    /// When the next attempt is due, if any.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Set when the delivery succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
    /// True when this decision dead-letters the delivery (publish `webhook.dead_lettered`).
    pub dead_lettered: bool,
}

/// Decide the delivery's next state after attempt `attempt` finished at `finished_at` with `outcome`.
pub fn decide(
    attempt: u32,
    outcome: &AttemptOutcome,
    finished_at: DateTime<Utc>,
) -> OutcomeDecision {
    match outcome {
        AttemptOutcome::Delivered { .. } => OutcomeDecision {
            status: DeliveryStatus::Delivered,
            next_retry_at: None,
            delivered_at: Some(finished_at),
            dead_lettered: false,
        },
        AttemptOutcome::Failed { retry_after, .. } => {
            match next_step(attempt, finished_at, *retry_after) {
                NextStep::Retry { at, .. } => OutcomeDecision {
                    status: DeliveryStatus::Failed,
                    next_retry_at: Some(at),
                    delivered_at: None,
                    dead_lettered: false,
                },
                NextStep::DeadLetter => OutcomeDecision {
                    status: DeliveryStatus::DeadLettered,
                    next_retry_at: None,
                    delivered_at: None,
                    dead_lettered: true,
                },
            }
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
