//! Delivery statistics: how an attempt is counted in the hourly counters (its result, its error class, its latency
//! bucket) and how a day's counters are read back (success rate, latency quantiles from the histogram).
//!
//! The counters are kept per subscription and hour (UTC), written in the transaction that records the attempts;
//! hours of days before yesterday are rolled up into one row per UTC day. A 30-day chart never reads the log.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::attempt::AttemptStatus;
use crate::delivery::FailureReason;

/// The hour (UTC) an attempt finished in is the hour it is counted in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// Midnight UTC of the day of `at`: statistics days are UTC days.
pub fn day_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::days(1)).unwrap_or(at)
}

/// What an attempt came to, as the statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// Delivered on attempt 1 of its schedule (a re-triggered delivery starts a new schedule).
    DeliveredFirst,
    /// Delivered on a later attempt (a retry, or an attempt after a re-trigger or resend).
    DeliveredRetry,
    /// Failed for the last time: the delivery is dead-lettered.
    DeadLettered,
    /// Failed, and a retry was scheduled.
    Retrying,
}

impl AttemptResult {
    /// The result of an attempt numbered `attempt_number` whose row moved to `status`.
    pub fn of(status: AttemptStatus, attempt_number: u32) -> Self {
        match status {
            AttemptStatus::Delivered if attempt_number <= 1 => Self::DeliveredFirst,
            AttemptStatus::Delivered => Self::DeliveredRetry,
            AttemptStatus::DeadLettered => Self::DeadLettered,
            _ => Self::Retrying,
        }
    }

    /// Whether the attempt failed (its error class is counted).
    pub fn failed(self) -> bool {
        matches!(self, Self::DeadLettered | Self::Retrying)
    }
}

/// The error class of a failed attempt, as the error distribution counts it: `http_<status>`, `timeout`,
/// `connection_refused`, `tls`, `dns`, `connection` (any other transport failure) or `target_refused`.
pub fn error_class(reason: &FailureReason) -> String {
    match reason {
        FailureReason::HttpStatus(status) => format!("http_{status}"),
        FailureReason::Timeout => "timeout".to_owned(),
        FailureReason::TargetRefused(_) => "target_refused".to_owned(),
        FailureReason::Connection(chain) => connection_class(chain).to_owned(),
    }
}

/// Classify a transport failure by its error chain (the HTTP client's message and its sources).
fn connection_class(chain: &str) -> &'static str {
    let text = chain.to_ascii_lowercase();
    if text.contains("dns") || text.contains("lookup") || text.contains("resolve") {
        "dns"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "tls"
    } else if text.contains("refused") {
        "connection_refused"
    } else {
        "connection"
    }
}

/// Upper bounds (inclusive, ms) of the response-time histogram's buckets; the last bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [i64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// Number of histogram buckets (the bounds plus one open bucket).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket a response time falls in.
pub fn latency_bucket(elapsed_ms: i64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| elapsed_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The `q` quantile (0–1) of a histogram, as the upper bound of the bucket it falls in (`None` when empty; the open
/// bucket reports the last bound). An estimate that is never below the true value by more than one bucket.
pub fn latency_quantile(buckets: &[i64], q: f64) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(LATENCY_BOUNDS_MS[i.min(LATENCY_BOUNDS_MS.len() - 1)]);
        }
    }
    LATENCY_BOUNDS_MS.last().copied()
}

/// The share of finished deliveries that were delivered: delivered / (delivered + dead-lettered), `None` when none
/// finished. Attempts that only scheduled a retry are not a finished delivery.
pub fn success_rate(delivered: i64, dead_lettered: i64) -> Option<f64> {
    let finished = delivered + dead_lettered;
    (finished > 0).then(|| delivered as f64 / finished as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_follow_the_row_state() {
        assert_eq!(
            AttemptResult::of(AttemptStatus::Delivered, 1),
            AttemptResult::DeliveredFirst
        );
        assert_eq!(
            AttemptResult::of(AttemptStatus::Delivered, 3),
            AttemptResult::DeliveredRetry
        );
        assert_eq!(
            AttemptResult::of(AttemptStatus::DeadLettered, 5),
            AttemptResult::DeadLettered
        );
        assert_eq!(
            AttemptResult::of(AttemptStatus::Failed, 2),
            AttemptResult::Retrying
        );
        assert!(AttemptResult::Retrying.failed() && !AttemptResult::DeliveredRetry.failed());
    }

    #[test]
    fn error_classes_name_the_failure() {
        let cases = [
            (FailureReason::HttpStatus(503), "http_503"),
            (FailureReason::Timeout, "timeout"),
            (
                FailureReason::TargetRefused("private".into()),
                "target_refused",
            ),
            (
                FailureReason::Connection(
                    "error sending request: tcp connect error: Connection refused (os error 111)"
                        .into(),
                ),
                "connection_refused",
            ),
            (
                FailureReason::Connection("dns error: failed to lookup address information".into()),
                "dns",
            ),
            (
                FailureReason::Connection("invalid peer certificate: UnknownIssuer".into()),
                "tls",
            ),
            (
                FailureReason::Connection("connection reset by peer".into()),
                "connection",
            ),
        ];
        for (reason, class) in cases {
            assert_eq!(error_class(&reason), class, "{reason}");
        }
    }

    #[test]
    fn latency_buckets_and_quantiles() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(30_001), LATENCY_BUCKETS - 1);
        let mut h = [0i64; LATENCY_BUCKETS];
        h[latency_bucket(3)] = 90;
        h[latency_bucket(200)] = 10;
        assert_eq!(latency_quantile(&h, 0.5), Some(5));
        assert_eq!(latency_quantile(&h, 0.95), Some(250));
        assert_eq!(latency_quantile(&[0; LATENCY_BUCKETS], 0.5), None);
        let mut slow = [0i64; LATENCY_BUCKETS];
        slow[LATENCY_BUCKETS - 1] = 1;
        assert_eq!(latency_quantile(&slow, 0.5), Some(30_000));
    }

    #[test]
    fn success_rate_counts_finished_deliveries() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(3, 1), Some(0.75));
    }
}
