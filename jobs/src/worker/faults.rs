//! A fault-injection seam for tests: at each step of its claim → send → flush cycle the worker asks a `Faults`
//! whether the step should fail *after* the server did its part, the way a connection that dies between a commit and
//! its reply makes the client see an error for work that happened. Chaos tests use it to reproduce that race on
//! every run instead of by timing luck; production runs `NoFaults`, which costs one virtual call per step.

use futures::future::BoxFuture;

/// A step of the worker's cycle where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A claim committed, or an ingest commit handed this worker jobs: they are locked by this worker. A fault here
    /// loses them, as a claim whose reply was lost (they run again once their leases expire).
    Claimed,
    /// A job's handler returned (its HTTP request, if any, was answered). A panic here is a panicking handler.
    Ran,
    /// A flush wrote its effects and acknowledgements but has not committed. A fault here rolls it back.
    BeforeCommit,
    /// A flush committed. A fault here loses the commit's reply, so the writer retries a flush that is done.
    Committed,
}

/// Decides whether a step fails. `Err` makes the step behave as if its connection had died at that point; an
/// implementation may also panic (at `Step::Ran`), restart a server, or wait, to place a real outage exactly there.
pub trait Faults: Send + Sync {
    /// Called once per claim (or hand-off), per job run and per flush, at `step`.
    fn at(&self, step: Step) -> BoxFuture<'_, Result<(), String>>;
}

/// No faults: what every production worker runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFaults;

impl Faults for NoFaults {
    fn at(&self, _: Step) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
