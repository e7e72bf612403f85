//! Pure workflow logic of integration-service: decisions as functions over values, no I/O.
//!
//! The shell (`jobs`, the service) does the I/O and asks this crate what to do next.

pub mod attempt;
pub mod catalog;
pub mod connector;
pub mod credentials;
pub mod delivery;
pub mod envelope;
pub mod event_types;
pub mod ids;
pub mod lanes;
pub mod matching;
pub mod net;
pub mod ratelimit;
pub mod retry;
pub mod signing;
pub mod stats;

pub use attempt::{
    AttemptState, AttemptStatus, Outcome, OutcomeDecision, Preflight, Retrigger, decide,
};
pub use delivery::{AttemptOutcome, DeliveryStatus, FailureReason};
pub use envelope::{EventEnvelope, EventType, RejectReason, StoreId};
pub use matching::{EventPattern, candidate_patterns, matches_any};
pub use retry::{MAX_ATTEMPTS, NextStep, RETRY_DELAYS, next_step, parse_retry_after};
