//! Time as a dependency, so tests can drive the retry schedule without waiting.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where handlers read the time from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Move to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A clock running `1 / scale` times faster than real time from the moment it is made: with `scale = 1/60`,
/// a 1-minute retry waits one real second. Recorded times are in this fast-forwarded time. For tests and demos.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
    scale: f64,
}

impl ScaledClock {
    /// Starts at the current time; `scale` must be > 0.
    pub fn new(scale: f64) -> Self {
        Self {
            origin: Utc::now(),
            started: std::time::Instant::now(),
            scale: scale.max(f64::MIN_POSITIVE),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let virtual_ms = self.started.elapsed().as_secs_f64() * 1000.0 / self.scale;
        self.origin + Duration::milliseconds(virtual_ms as i64)
    }
}

/// Real time to wait for `delay` of service time at `time_scale` (see `ScaledClock`); never negative.
pub fn real_wait(delay: Duration, time_scale: f64) -> std::time::Duration {
    let ms = delay.num_milliseconds().max(0) as f64 * time_scale.max(0.0);
    std::time::Duration::from_millis(ms as u64)
}

/// The clock a process uses for `time_scale` (1.0: the system clock).
pub fn for_time_scale(scale: f64) -> Arc<dyn Clock> {
    if (scale - 1.0).abs() < f64::EPSILON {
        Arc::new(SystemClock)
    } else {
        Arc::new(ScaledClock::new(scale))
    }
}
