//! What a job came to: one vocabulary for every kind of job (metrics, tests, the `outcome` of its span).

use workflows::attempt::AttemptStatus;

/// What a job came to, for metrics and tests; one vocabulary for every kind of job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// An attempt was made; the row moved to `status`.
    Attempted {
        /// The row's status after the attempt (`Delivered` when it succeeded).
        status: AttemptStatus,
    },
    /// A poll ran (or failed; the next one is scheduled either way).
    Polled {
        /// Records the poll found (before deduplication).
        published: usize,
        /// Whether the poll failed.
        failed: bool,
    },
    /// The job no longer applies (moved on, re-triggered, superseded, unknown): nothing was sent.
    Stale,
    /// The row's owner (subscription, connector) is inactive: its retries stop.
    Cancelled,
    /// The attempt could not be made now and was queued again without counting it.
    Deferred(DeferCause),
    /// The job ran before its due time (clock skew, whole-second queue precision): re-queued for then.
    NotYetDue,
}

/// Why an attempt was deferred without counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferCause {
    /// The secret store could not be read (signing secret, connector credentials).
    SecretsUnavailable,
    /// The connector's rate limit has no room now.
    RateLimited,
}

impl Handled {
    /// What the job came to, in one word (the `outcome` of its span).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Attempted { status } => match status {
                AttemptStatus::Delivered => "delivered",
                AttemptStatus::DeadLettered => "dead_lettered",
                AttemptStatus::Cancelled => "cancelled",
                AttemptStatus::Failed | AttemptStatus::Pending => "failed",
            },
            Self::Polled { failed: false, .. } => "polled",
            Self::Polled { failed: true, .. } => "poll_failed",
            Self::Stale => "stale",
            Self::Cancelled => "cancelled",
            Self::Deferred(_) => "deferred",
            Self::NotYetDue => "not_yet_due",
        }
    }
}
