//! Job types of integration-service and their handlers. Handlers reach the outside world only through the
//! small traits in [`ports`], so they run the same against Postgres, Kafka and HTTP as against test doubles.

pub mod attempt;
pub mod clock;
pub mod connector;
pub mod job;
pub mod ports;
pub mod webhook;

pub use clock::{Clock, ManualClock, ScaledClock, SystemClock};
pub use job::{Job, JobDecodeError};
