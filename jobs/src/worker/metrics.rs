//! What the worker counts, as a port: the shell's metrics registry implements it, so `jobs` never depends on the
//! service crate (tests may pass [`NoMetrics`]).

use crate::attempt::Handled;

/// The worker's counters, recorded once a flush committed.
pub trait JobMetrics: Send + Sync {
    /// Count a handled webhook job (`Err`: it hit an infrastructure error and apalis runs it again).
    fn record_handled(&self, handled: Result<&Handled, &String>);
    /// Count a handled connector job (a sync attempt or a poll).
    fn record_connector(&self, handled: &Handled);
    /// Count a recorded webhook attempt by its number, with the time from the event to its delivery if delivered.
    fn record_attempt(&self, number: u32, delivered_after_ms: Option<i64>);
}

/// Metrics that count nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl JobMetrics for NoMetrics {
    fn record_handled(&self, _: Result<&Handled, &String>) {}
    fn record_connector(&self, _: &Handled) {}
    fn record_attempt(&self, _: u32, _: Option<i64>) {}
}
