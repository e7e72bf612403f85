//! The payload of every apalis task: a small enum that carries ids; handlers reload state from the database.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connector::handler::{PollConnector, SyncConnector};
use crate::webhook::DeliverWebhook;

/// The apalis queue (`apalis.jobs.job_type`) all our jobs share.
pub const QUEUE: &str = "integration-service";

/// One variant per kind of job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Make one attempt of a webhook delivery.
    WebhookDelivery(DeliverWebhook),
    /// Make one attempt of an outbound connector sync.
    ConnectorSync(SyncConnector),
    /// Run one scheduled (or requested) connector poll.
    ConnectorPoll(PollConnector),
}

/// A task payload that is not one of our jobs (written by a newer or older version, or corrupted).
#[derive(Debug, thiserror::Error)]
#[error("undecodable job payload: {0}")]
pub struct JobDecodeError(#[from] serde_json::Error);

impl Job {
    /// Unique per scheduled attempt, so a job queued twice by mistake is refused by apalis' unique index.
    pub fn idempotency_key(&self) -> String {
        match self {
            Job::WebhookDelivery(d) => {
                format!("delivery:{}:attempt:{}", d.delivery_id, d.dispatch_seq)
            }
            Job::ConnectorSync(j) => {
                format!("connector-job:{}:attempt:{}", j.job_id, j.dispatch_seq)
            }
            Job::ConnectorPoll(p) => format!("poll:{}:{}", p.config_id, p.poll_seq),
        }
    }

    /// The lane the job is claimed in: its owner (subscription, connector). A lane has a bounded number of jobs
    /// in flight across every worker, and lanes with due work take turns (see [`crate::queue::claim`]).
    pub fn lane(&self) -> Uuid {
        match self {
            Job::WebhookDelivery(d) => d.subscription_id.uuid(),
            Job::ConnectorSync(j) => j.config_id.uuid(),
            Job::ConnectorPoll(p) => Uuid::from(p.config_id),
        }
    }

    /// JSON bytes stored in `apalis.jobs.job`.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a plain enum of ids cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read back what `encode` wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, JobDecodeError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_keys_name_the_attempt() {
        let job = Job::WebhookDelivery(DeliverWebhook {
            delivery_id: workflows::ids::DeliveryId(Uuid::nil()),
            dispatch_seq: 3,
            subscription_id: workflows::ids::SubscriptionId(Uuid::max()),
        });
        assert_eq!(Job::decode(&job.encode()).ok(), Some(job.clone()));
        assert_eq!(
            job.idempotency_key(),
            format!("delivery:{}:attempt:3", Uuid::nil())
        );
        assert_eq!(
            job.lane(),
            Uuid::max(),
            "claimed in its subscription's lane"
        );
        assert!(Job::decode(b"{\"kind\":\"unknown\"}").is_err());
    }
}
