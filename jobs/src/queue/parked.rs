//! Parked jobs: a job pushed to run more than [`PARK_BEYOND`] from now (a retry 5 minutes, 30 minutes or 2 hours
//! ahead, a scheduled connector poll) carries its lane under [`PARKED`] instead of `lane` in apalis' `metadata`.
//! The claim's walk goes over the lanes of the lane index (`metadata -> 'lane'`), so it never visits a lane that
//! holds only parked jobs: a million retries waiting for their endpoints to recover cost a claim nothing, where each
//! such lane otherwise cost every claim an index descent and a "due?" probe.
//!
//! Every worker promotes, every [`PROMOTE_EVERY`], the parked jobs due within [`PROMOTE_AHEAD`]: their lane key back,
//! their `run_at` unchanged, so each is in its lane, claimable, a minute before it is due. Promoting is one small
//! update per retry (never on a first attempt's path), batched, `SKIP LOCKED` so workers promoting at once share the
//! work. A parked job is never lost: if no worker promoted it in time (none was running), the next promotion takes
//! it whatever its `run_at`. River's scheduler moves its `scheduled` jobs to `available` the same way.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

/// The `metadata` key of a parked job's lane (the lane index has no entry for it).
pub const PARKED: &str = "parked";

/// Jobs due later than this when pushed are parked.
pub const PARK_BEYOND: Duration = Duration::from_secs(120);

/// Parked jobs due within this are promoted into their lane.
pub const PROMOTE_AHEAD: Duration = Duration::from_secs(60);

/// How often each worker promotes (a fraction of [`PROMOTE_AHEAD`], so a job is promoted many times over before it is
/// due even when a promotion fails).
pub const PROMOTE_EVERY: Duration = Duration::from_secs(5);

/// Jobs promoted per statement (one short transaction each).
const BATCH: i64 = 5_000;

/// Whether a job pushed to run `delay` from now is parked.
pub fn parks(delay: Duration) -> bool {
    delay > PARK_BEYOND
}

/// Promote the parked jobs due within [`PROMOTE_AHEAD`], in batches; returns how many. "Within" is by this process's
/// clock, the clock `queue::push` wrote their `run_at` with.
pub async fn promote(pool: &PgPool) -> Result<u64, sqlx::Error> {
    crate::batched::drain(
        pool,
        "UPDATE apalis.jobs j SET metadata = (j.metadata - 'parked'::text) || hstore('lane', j.metadata -> 'parked')
         WHERE j.id IN (
             SELECT id FROM apalis.jobs WHERE metadata ? 'parked' AND run_at <= $1
             ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        Utc::now() + PROMOTE_AHEAD,
        BATCH,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jobs_due_well_after_a_promotion_window_are_parked() {
        assert!(!parks(Duration::ZERO), "a first attempt");
        assert!(!parks(Duration::from_secs(60)), "the 1-minute retry");
        assert!(parks(Duration::from_secs(300)), "the 5-minute retry");
        assert!(parks(Duration::from_secs(7200)), "the 2-hour retry");
        assert!(
            PARK_BEYOND > PROMOTE_AHEAD + PROMOTE_EVERY,
            "a parked job waits for at least one promotion before it could be promoted"
        );
    }
}
