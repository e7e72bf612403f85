//! A config's rate limit as GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): the
//! "theoretical arrival time" `tat` is all the state, so it lives in one Postgres row shared by every worker
//! process, read and advanced by Postgres' clock. Pure: the caller passes `tat` and now.

use chrono::{DateTime, Duration, Utc};

/// Calls a channel allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
}

impl RateLimit {
    /// Time between calls at the sustained rate.
    pub fn emission(&self) -> Duration {
        let micros = (1_000_000.0 / self.per_second.max(0.001)).round() as i64;
        Duration::microseconds(micros.max(1))
    }

    /// How far ahead of the sustained rate a burst may run.
    pub fn tolerance(&self) -> Duration {
        self.emission() * (self.burst.max(1) as i32 - 1)
    }
}

/// The answer to "may I call?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Call after `wait` (zero: now); the state becomes `tat`.
    Granted { wait: Duration, tat: DateTime<Utc> },
    /// The turn is more than `max_wait` away: nothing was reserved; ask again after `wait`.
    Denied { wait: Duration },
}

/// Reserve the next call slot at `now`, unless it is more than `max_wait` away.
pub fn reserve(
    tat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: RateLimit,
    max_wait: Duration,
) -> Reservation {
    let t = tat.map_or(now, |tat| tat.max(now));
    let wait = (t - limit.tolerance() - now).max(Duration::zero());
    if wait > max_wait {
        return Reservation::Denied { wait };
    }
    Reservation::Granted {
        wait,
        tat: t + limit.emission(),
    }
}

/// The channel said `Retry-After: pause`: no call before `now + pause`, then the sustained rate (no burst).
pub fn pause(
    tat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: RateLimit,
    pause: Duration,
) -> DateTime<Utc> {
    let blocked = now + pause + limit.tolerance();
    tat.map_or(blocked, |tat| tat.max(blocked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3,
    };

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// Reserve at `now`, returning the wait, and keep the new state.
    fn take(tat: &mut Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Duration> {
        match reserve(*tat, now, LIMIT, Duration::seconds(60)) {
            Reservation::Granted { wait, tat: next } => {
                *tat = Some(next);
                Some(wait)
            }
            Reservation::Denied { .. } => None,
        }
    }

    #[test]
    fn a_burst_goes_at_once_then_calls_are_spaced_at_the_sustained_rate() {
        let mut tat = None;
        for _ in 0..3 {
            assert_eq!(take(&mut tat, t0()), Some(Duration::zero()));
        }
        assert_eq!(take(&mut tat, t0()), Some(Duration::milliseconds(500)));
        assert_eq!(take(&mut tat, t0()), Some(Duration::milliseconds(1000)));
    }

    #[test]
    fn a_quiet_period_refills_the_burst_but_no_more() {
        let mut tat = None;
        for _ in 0..3 {
            take(&mut tat, t0());
        }
        let later = t0() + Duration::hours(1);
        for _ in 0..3 {
            assert_eq!(take(&mut tat, later), Some(Duration::zero()));
        }
        assert_eq!(take(&mut tat, later), Some(Duration::milliseconds(500)));
    }

    #[test]
    fn a_turn_beyond_max_wait_is_denied_without_reserving() {
        let tat = Some(t0() + Duration::seconds(10) + LIMIT.tolerance());
        let denied = reserve(tat, t0(), LIMIT, Duration::seconds(5));
        assert_eq!(
            denied,
            Reservation::Denied {
                wait: Duration::seconds(10)
            }
        );
    }

    #[test]
    fn a_pause_blocks_every_call_until_it_ends_then_paces_without_burst() {
        let mut tat = Some(pause(None, t0(), LIMIT, Duration::seconds(2)));
        assert_eq!(take(&mut tat, t0()), Some(Duration::seconds(2)));
        assert_eq!(take(&mut tat, t0()), Some(Duration::milliseconds(2500)));
        // A pause never shortens an existing wait.
        let far = Some(t0() + Duration::hours(1));
        assert_eq!(
            pause(far, t0(), LIMIT, Duration::seconds(1)),
            t0() + Duration::hours(1)
        );
    }

    proptest! {
        /// Over any window, callers granted slots never exceed burst + rate × window.
        #[test]
        fn granted_slots_never_exceed_the_limit(arrivals in proptest::collection::vec(0i64..10_000, 1..200)) {
            let mut sorted = arrivals;
            sorted.sort_unstable();
            let mut tat = None;
            let mut slots = Vec::new();
            for ms in sorted {
                let now = t0() + Duration::milliseconds(ms);
                if let Some(wait) = take(&mut tat, now) {
                    slots.push(now + wait);
                }
            }
            slots.sort();
            for (i, start) in slots.iter().enumerate() {
                let in_window = slots[i..].iter().take_while(|s| **s < *start + Duration::seconds(1)).count();
                prop_assert!(in_window as f64 <= f64::from(LIMIT.burst) + LIMIT.per_second);
            }
        }
    }
}
