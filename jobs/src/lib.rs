//! Job types of integration-service, their handlers, and the queue and worker loop that run them on
//! apalis-postgres ([`queue`]: everything SQL about jobs; [`worker`]: the claim/run/flush loop). Handlers reach the outside world only through the
//! small traits in [`ports`], so they run the same against Postgres, Kafka and HTTP as against test doubles.

pub mod attempt;
pub mod backoff;
pub mod batched;
pub mod clock;
pub mod connector;
#[cfg(test)]
mod fakes;
pub mod job;
pub mod ports;
pub mod queue;
pub mod trace;
pub mod webhook;
pub mod worker;

pub use clock::{Clock, ManualClock, ScaledClock, SystemClock};
pub use job::{Job, JobDecodeError};
