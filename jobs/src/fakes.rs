//! Fakes of the ports shared by the unit tests of several kinds of job.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use connectors::RateGate;
use workflows::ratelimit::{RateLimit, Reservation};

/// A rate limiter that grants every turn at once (`Gate(None)`) or denies every one, the next in `wait`.
pub struct Gate(pub Option<Duration>);

#[async_trait]
impl RateGate for Gate {
    async fn reserve(
        &self,
        _: uuid::Uuid,
        _: &str,
        _: RateLimit,
        _: Duration,
    ) -> Result<Reservation, String> {
        Ok(match self.0 {
            None => Reservation::Granted {
                wait: chrono::Duration::zero(),
                tat: Utc::now(),
            },
            Some(wait) => Reservation::Denied {
                wait: chrono::Duration::from_std(wait).unwrap_or_default(),
            },
        })
    }
    async fn pause(&self, _: uuid::Uuid, _: &str, _: RateLimit, _: Duration) -> Result<(), String> {
        Ok(())
    }
}
