//! A token bucket per connector config: `burst` calls at once, then `per_second`; a `Retry-After` pauses it.
//! Pure: the caller passes the time in, so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// Calls a channel allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
}

/// The bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let limit = RateLimit {
            per_second: limit.per_second.max(0.001),
            burst: limit.burst.max(1),
        };
        Self {
            limit,
            tokens: f64::from(limit.burst),
            updated: now,
            paused_until: None,
        }
    }

    /// The limit it enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        self.updated = now.max(self.updated);
    }

    /// Take a token: `Ok` to call now, or how long to wait before asking again.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.limit.per_second,
            ))
        }
    }

    /// The channel said `Retry-After`: nobody calls it for this config until `until`, and the burst is spent.
    pub fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        self.tokens = 0.0;
        self.updated = until.max(self.updated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3,
    };

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.try_take(t0 + Duration::from_millis(499)).is_err());
        assert_eq!(b.try_take(t0 + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn retry_after_pauses_every_call_until_it_passes() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        b.pause_until(t0 + Duration::from_secs(2));
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(1))
        );
        // After the pause the bucket starts empty and refills at the sustained rate.
        let after = t0 + Duration::from_secs(2);
        assert!(b.try_take(after).is_err());
        assert_eq!(b.try_take(after + Duration::from_millis(500)), Ok(()));
    }
}
