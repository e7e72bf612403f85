//! The outbound attempt state machine, shared by every kind of outbound job (webhook deliveries, connector syncs).
//!
//! An outbound job is a row that is attempted on the 1 m / 5 m / 30 m / 2 h schedule ([`crate::retry`]): each
//! attempt is recorded and moves the row on ([`decide`]); an attempt that cannot be made right now (secrets
//! unavailable, a rate limit) is deferred without counting it; a row whose owner (subscription, connector) went away
//! is cancelled; a dead-lettered or cancelled row can be re-triggered with a fresh attempt counter ([`Retrigger`]).
//! Which queued job is current is told by the row's `dispatch_seq`: a job carrying another number is stale.
//! The kinds differ only in how they classify what the remote side answered, which they map into [`Outcome`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::retry::{NextStep, next_step};

/// Status of an outbound job's row (stored as text with a CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatus {
    /// Waiting for its first attempt (or a re-triggered one).
    Pending,
    /// The last attempt failed; the next one is due at `next_retry_at`.
    Failed,
    /// The last attempt succeeded (a webhook receiver answered 2xx, a connector's marketplace accepted the sync).
    Delivered,
    /// All attempts failed, or one failed in a way no retry can fix; an admin can re-trigger it.
    DeadLettered,
    /// Retries stopped because the job's owner (subscription, connector) was deactivated or deleted.
    Cancelled,
}

impl AttemptStatus {
    /// All statuses, in the order the API documents them.
    pub const ALL: [AttemptStatus; 5] = [
        Self::Pending,
        Self::Failed,
        Self::Delivered,
        Self::DeadLettered,
        Self::Cancelled,
    ];

    /// The statuses in which a row still waits for an attempt; only rows in them are recorded, deferred or cancelled.
    pub const WAITING: [AttemptStatus; 2] = [Self::Pending, Self::Failed];

    /// The webhook spelling in the database and the API (connector jobs spell `Delivered` as `SUCCEEDED`, see
    /// [`crate::connector::job_status_name`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Failed => "FAILED",
            Self::Delivered => "DELIVERED",
            Self::DeadLettered => "DEAD_LETTERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parse the spelling of [`AttemptStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether a queued attempt for a row in this status should still be made.
    pub fn awaits_attempt(self) -> bool {
        Self::WAITING.contains(&self)
    }
}

/// What an attempt came to, as the state machine needs it; each kind maps its own classification into this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The remote side accepted it.
    Succeeded,
    /// It failed; `permanent` when retrying the same request cannot help (dead-letter at once).
    Failed {
        /// The remote side's `Retry-After`, which may push the next attempt later within the schedule.
        retry_after: Option<Duration>,
        /// A refusal no retry can fix.
        permanent: bool,
    },
}

/// The state a row moves to after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeDecision {
    /// The row's new status.
    pub status: AttemptStatus,
    /// When the next attempt is due (service clock), if there is one.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When the row succeeded (`delivered_at`, `completed_at`), set only by a success.
    pub delivered_at: Option<DateTime<Utc>>,
    /// True when this decision dead-letters the row (its kind publishes a dead-letter event).
    pub dead_lettered: bool,
}

impl OutcomeDecision {
    /// Whether the row's `dispatch_seq` moves on: only when a next attempt is queued for it.
    pub fn queues_next_attempt(&self) -> bool {
        self.next_retry_at.is_some()
    }
}

/// Decide a row's next state after attempt number `attempt` (1-based) finished at `finished_at` with `outcome`.
pub fn decide(attempt: u32, outcome: &Outcome, finished_at: DateTime<Utc>) -> OutcomeDecision {
    let dead = OutcomeDecision {
        status: AttemptStatus::DeadLettered,
        next_retry_at: None,
        delivered_at: None,
        dead_lettered: true,
    };
    match outcome {
        Outcome::Succeeded => OutcomeDecision {
            status: AttemptStatus::Delivered,
            next_retry_at: None,
            delivered_at: Some(finished_at),
            dead_lettered: false,
        },
        Outcome::Failed {
            permanent: true, ..
        } => dead,
        Outcome::Failed { retry_after, .. } => {
            match next_step(attempt, finished_at, *retry_after) {
                NextStep::Retry { at, .. } => OutcomeDecision {
                    status: AttemptStatus::Failed,
                    next_retry_at: Some(at),
                    delivered_at: None,
                    dead_lettered: false,
                },
                NextStep::DeadLetter => dead,
            }
        }
    }
}

/// Jobs may run this much before `next_retry_at`: the queue stores `run_at` in whole seconds.
pub const DUE_TOLERANCE: Duration = Duration::seconds(1);

/// The part of an outbound row the state machine reads before an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptState {
    /// The row's status.
    pub status: AttemptStatus,
    /// Attempts made in the current schedule (0 after a re-trigger).
    pub attempt_number: u32,
    /// When the next attempt is due (set while FAILED).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Number of the attempt currently queued; a job carrying another number is stale.
    pub dispatch_seq: i32,
}

/// What a queued job should do before any I/O, in this order: stale → early → cancelled → go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    /// The row moved on (another attempt queued, finished, re-triggered): do nothing.
    Stale,
    /// Claimed before its due time: queue the same attempt again after this (service-clock) delay, not counting it.
    NotYetDue(Duration),
    /// The owner is inactive: cancel the row's retries.
    Cancel,
    /// Make attempt number `attempt_number` (1-based).
    Go {
        /// The number the attempt will be recorded under.
        attempt_number: u32,
    },
}

/// The pre-flight decision for a job queued as `queued_seq` whose row is in `state`, at `now`.
pub fn preflight(
    state: &AttemptState,
    queued_seq: i32,
    owner_active: bool,
    now: DateTime<Utc>,
) -> Preflight {
    if state.dispatch_seq != queued_seq || !state.status.awaits_attempt() {
        return Preflight::Stale;
    }
    if let Some(due) = state.next_retry_at
        && due - DUE_TOLERANCE > now
    {
        return Preflight::NotYetDue(due - now);
    }
    if !owner_active {
        return Preflight::Cancel;
    }
    Preflight::Go {
        attempt_number: state.attempt_number + 1,
    }
}

/// The last error recorded on a row whose attempt was deferred (`None`: keep the previous one).
pub fn deferred_note(reason: Option<&str>) -> Option<String> {
    reason.map(|r| format!("deferred, no attempt counted: {r}"))
}

/// Which finished rows a re-trigger may restart (status to PENDING, attempt counter to 0, a fresh job due now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrigger {
    /// Only dead-lettered or cancelled ones (`…/retrigger`).
    DeadOrCancelled,
    /// Any row not waiting for an attempt, succeeded ones included (`…/resend`).
    AnyFinished,
}

impl Retrigger {
    /// The statuses a row may be re-triggered from.
    pub fn from_statuses(self) -> &'static [AttemptStatus] {
        match self {
            Self::DeadOrCancelled => &[AttemptStatus::DeadLettered, AttemptStatus::Cancelled],
            Self::AnyFinished => &[
                AttemptStatus::DeadLettered,
                AttemptStatus::Cancelled,
                AttemptStatus::Delivered,
            ],
        }
    }

    /// The state a re-triggered row starts from, its next job queued as `dispatch_seq + 1`.
    pub fn restart(self, state: &AttemptState) -> Option<AttemptState> {
        self.from_statuses()
            .contains(&state.status)
            .then_some(AttemptState {
                status: AttemptStatus::Pending,
                attempt_number: 0,
                next_retry_at: None,
                dispatch_seq: state.dispatch_seq + 1,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{SyncFailure, sync_outcome};
    use crate::delivery::{AttemptOutcome, FailureReason};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// A retryable failure of each kind, mapped into the shared outcome.
    fn retryable_failures() -> [Outcome; 2] {
        let webhook = AttemptOutcome::Failed {
            reason: FailureReason::HttpStatus(503),
            status: Some(503),
            elapsed_ms: 3,
            retry_after: None,
        };
        let sync = SyncFailure {
            reason: "503".into(),
            status: Some(503),
            retry_after: None,
            permanent: false,
        };
        [webhook.outcome(), sync_outcome(Some(&sync))]
    }

    #[test]
    fn both_kinds_retry_on_the_same_schedule_then_dead_letter() {
        for failure in retryable_failures() {
            for (attempt, minutes) in (1..=4).zip([1, 5, 30, 120]) {
                let d = decide(attempt, &failure, t0());
                assert_eq!(d.status, AttemptStatus::Failed);
                assert_eq!(d.next_retry_at, Some(t0() + Duration::minutes(minutes)));
                assert!(d.queues_next_attempt() && !d.dead_lettered);
            }
            let d = decide(5, &failure, t0());
            assert_eq!(
                (d.status, d.dead_lettered),
                (AttemptStatus::DeadLettered, true)
            );
            assert!(!d.queues_next_attempt());
        }
    }

    #[test]
    fn both_kinds_succeed_alike_and_a_permanent_refusal_dead_letters_at_once() {
        let webhook = AttemptOutcome::Delivered {
            status: 204,
            elapsed_ms: 1,
        };
        for success in [webhook.outcome(), sync_outcome(None)] {
            let d = decide(3, &success, t0());
            assert_eq!(
                (d.status, d.delivered_at),
                (AttemptStatus::Delivered, Some(t0()))
            );
            assert!(!d.queues_next_attempt());
        }
        let refused = Outcome::Failed {
            retry_after: None,
            permanent: true,
        };
        assert!(decide(1, &refused, t0()).dead_lettered);
    }

    fn state(status: AttemptStatus, next_retry_at: Option<DateTime<Utc>>) -> AttemptState {
        AttemptState {
            status,
            attempt_number: 2,
            next_retry_at,
            dispatch_seq: 7,
        }
    }

    #[test]
    fn preflight_checks_stale_then_early_then_owner() {
        let failed = state(AttemptStatus::Failed, Some(t0()));
        assert_eq!(preflight(&failed, 6, true, t0()), Preflight::Stale);
        let done = state(AttemptStatus::Delivered, None);
        assert_eq!(preflight(&done, 7, true, t0()), Preflight::Stale);
        let later = state(AttemptStatus::Failed, Some(t0() + Duration::minutes(1)));
        assert_eq!(
            preflight(&later, 7, false, t0()),
            Preflight::NotYetDue(Duration::minutes(1)),
            "early before cancelled"
        );
        let almost = state(
            AttemptStatus::Failed,
            Some(t0() + Duration::milliseconds(500)),
        );
        assert_eq!(
            preflight(&almost, 7, true, t0()),
            Preflight::Go { attempt_number: 3 },
            "within the queue's whole-second precision"
        );
        assert_eq!(preflight(&failed, 7, false, t0()), Preflight::Cancel);
    }

    #[test]
    fn retrigger_restarts_finished_rows_with_a_fresh_counter() {
        let dead = state(AttemptStatus::DeadLettered, None);
        let restarted = Retrigger::DeadOrCancelled.restart(&dead);
        assert_eq!(
            restarted,
            Some(AttemptState {
                status: AttemptStatus::Pending,
                attempt_number: 0,
                next_retry_at: None,
                dispatch_seq: 8
            })
        );
        let delivered = state(AttemptStatus::Delivered, None);
        assert_eq!(Retrigger::DeadOrCancelled.restart(&delivered), None);
        assert!(Retrigger::AnyFinished.restart(&delivered).is_some());
        let waiting = state(AttemptStatus::Failed, Some(t0()));
        assert_eq!(Retrigger::AnyFinished.restart(&waiting), None);
    }

    #[test]
    fn statuses_round_trip_and_deferrals_say_so() {
        for status in AttemptStatus::ALL {
            assert_eq!(AttemptStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(AttemptStatus::parse("delivered"), None);
        assert_eq!(
            deferred_note(Some("sealed")).as_deref(),
            Some("deferred, no attempt counted: sealed")
        );
        assert_eq!(deferred_note(None), None);
    }
}
