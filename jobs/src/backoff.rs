//! Backoff between retries of infrastructure work (reconnecting listeners, re-running a failed batch or relay):
//! exponential with jitter, from `backon`, so processes that failed together do not retry in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// First delay before jitter; each failure doubles it.
const MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest delay before jitter. Jitter adds up to as much again, so no wait exceeds twice this.
const MAX_DELAY: Duration = Duration::from_millis(2_500);

fn schedule() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The delays of one run of failures: 50–100 ms after the first, doubling up to 2.5–5 s; [`Backoff::reset`] on
/// success starts over.
pub struct Backoff {
    delays: ExponentialBackoff,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { delays: schedule() }
    }
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff").finish_non_exhaustive()
    }
}

impl Backoff {
    /// The next delay of this run of failures.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(MAX_DELAY)
    }

    /// Sleep for the next delay; `Err` if `cancel` fires meanwhile.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), ()> {
        let delay = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = cancel.cancelled() => Err(()),
        }
    }

    /// Back to the shortest delay.
    pub fn reset(&mut self) {
        self.delays = schedule();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches: delays that do not grow, exceed twice the cap, or keep growing after a reset.
    #[test]
    fn delays_grow_with_jitter_up_to_twice_the_cap_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!((MIN_DELAY..MIN_DELAY * 2).contains(&first), "{first:?}");
        let later: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(later.iter().all(|d| *d >= MIN_DELAY && *d < MAX_DELAY * 2));
        assert!(later.last().is_some_and(|d| *d >= MAX_DELAY));
        backoff.reset();
        assert!(backoff.next_delay() < MIN_DELAY * 2);
    }
}
