//! The retry schedule: attempt 1 is immediate, then 1 min, 5 min, 30 min and 2 h; the fifth failure dead-letters.

use chrono::{DateTime, Duration, Utc};

/// How many attempts a delivery gets before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// Delay before attempt `n + 2` after attempt `n + 1` failed (index 0 is the delay before attempt 2).
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::minutes(1),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
];

/// What happens after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again: attempt number `attempt` is due at `at`.
    Retry { attempt: u32, at: DateTime<Utc> },
    /// No attempts left.
    DeadLetter,
}

/// Decide what follows the failure of attempt `failed_attempt` (1-based) that finished at `failed_at`.
///
/// A receiver's `Retry-After` may push the next attempt later than the schedule, never earlier,
/// and never beyond the next step of the schedule after it (so a hostile header cannot park a delivery forever).
pub fn next_step(
    failed_attempt: u32,
    failed_at: DateTime<Utc>,
    retry_after: Option<Duration>,
) -> NextStep {
    if failed_attempt == 0 || failed_attempt >= MAX_ATTEMPTS {
        return NextStep::DeadLetter;
    }
    let index = (failed_attempt - 1) as usize;
    let scheduled = RETRY_DELAYS[index];
    let ceiling = RETRY_DELAYS.get(index + 1).copied().unwrap_or(scheduled);
    let delay = match retry_after {
        Some(asked) if asked > scheduled => asked.min(ceiling),
        _ => scheduled,
    };
    NextStep::Retry {
        attempt: failed_attempt + 1,
        at: failed_at + delay,
    }
}

/// A `Retry-After` header in delta-seconds (what receivers and channels send here), capped at a day; the HTTP-date
/// form is ignored.
pub fn parse_retry_after(raw: &str) -> Option<Duration> {
    let secs: i64 = raw.trim().parse().ok()?;
    Some(Duration::seconds(secs.clamp(0, 86_400)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped_at_a_day() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::seconds(7)));
        assert_eq!(parse_retry_after("999999"), Some(Duration::days(1)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn schedule_is_one_five_thirty_minutes_then_two_hours_then_dead_letter() {
        let expected = [(2, 1), (3, 5), (4, 30), (5, 120)];
        for (failed, (attempt, minutes)) in (1..=4).zip(expected) {
            assert_eq!(
                next_step(failed, t0(), None),
                NextStep::Retry {
                    attempt,
                    at: t0() + Duration::minutes(minutes)
                }
            );
        }
        assert_eq!(next_step(5, t0(), None), NextStep::DeadLetter);
    }

    #[test]
    fn retry_after_can_delay_but_not_hasten_nor_park_forever() {
        let shorter = next_step(1, t0(), Some(Duration::seconds(5)));
        assert_eq!(
            shorter,
            NextStep::Retry {
                attempt: 2,
                at: t0() + Duration::minutes(1)
            }
        );
        let longer = next_step(1, t0(), Some(Duration::minutes(3)));
        assert_eq!(
            longer,
            NextStep::Retry {
                attempt: 2,
                at: t0() + Duration::minutes(3)
            }
        );
        let huge = next_step(1, t0(), Some(Duration::days(30)));
        assert_eq!(
            huge,
            NextStep::Retry {
                attempt: 2,
                at: t0() + Duration::minutes(5)
            }
        );
    }

    proptest! {
        #[test]
        fn attempts_strictly_increase_and_never_exceed_the_maximum(failed in 0u32..20, secs in 0i64..1_000_000) {
            match next_step(failed, t0(), Some(Duration::seconds(secs))) {
                NextStep::Retry { attempt, at } => {
                    prop_assert!((1..MAX_ATTEMPTS).contains(&failed));
                    prop_assert_eq!(attempt, failed + 1);
                    prop_assert!(at > t0());
                    prop_assert!(at - t0() <= Duration::hours(2));
                }
                NextStep::DeadLetter => prop_assert!(failed == 0 || failed >= MAX_ATTEMPTS),
            }
        }
    }
}
