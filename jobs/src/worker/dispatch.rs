//! Which handler a claimed job goes to, with the row it refers to, and what it came to: the one place that knows
//! every kind of job (a new outbound kind adds its variant here; its loader is its `AttemptTable::load`).

use std::collections::HashMap;

use crate::Job;
use crate::attempt::Handled;
use crate::connector::handler::ConnectorDeps;
use crate::connector::handler::{
    self as connector, ConnectorJobToRun, PollConnector, PollEffect, PollToRun, SyncConnector,
    SyncEffect,
};
use crate::ports::DeliveryToSend;
use crate::queue::attempts::AttemptTable;
use crate::webhook::{self, DeliverWebhook, WebhookDeps};
use apalis_core::task::task_id::TaskId;
use workflows::ids::{ConnectorId, ConnectorJobId, DeliveryId};

use super::{Step, Worker};
use crate::queue::load;

/// The effect a job asks the writer to apply, by kind of job.
pub(super) enum Effects {
    Webhook(webhook::Effect),
    Sync(SyncEffect),
    Poll(PollEffect),
}

/// What a job came to, and the effect it asks the writer to apply.
pub(super) struct Done {
    pub(super) handled: Handled,
    pub(super) effect: Effects,
}

impl Done {
    pub(super) fn not_yet_due(&self) -> bool {
        self.handled == Handled::NotYetDue
    }
}

/// A claimed job with the row it refers to, loaded with the rest of its batch.
pub(super) enum Work {
    Webhook(DeliverWebhook, Option<DeliveryToSend>),
    ConnectorSync(SyncConnector, Option<ConnectorJobToRun>),
    ConnectorPoll(PollConnector, Option<PollToRun>),
    Undecodable(String),
}

/// Deliveries as the ingest that queued their jobs wrote them, by id: a job handed off is run from these instead of
/// loading its delivery back (its row, subscription and body were all in the fan-out's answer).
pub type Known = HashMap<DeliveryId, DeliveryToSend>;

/// The rows a batch of claimed jobs refers to, by kind, loaded with one query per kind.
pub(super) struct Loaded {
    deliveries: HashMap<DeliveryId, DeliveryToSend>,
    connector_jobs: HashMap<ConnectorJobId, ConnectorJobToRun>,
    polls: HashMap<ConnectorId, PollToRun>,
}

impl Loaded {
    /// A claimed job with its row (`None` when the row is unknown: the job is stale).
    pub(super) fn work(&mut self, job: Result<Job, String>) -> Work {
        match job {
            Ok(Job::WebhookDelivery(d)) => {
                let loaded = self.deliveries.remove(&d.delivery_id);
                Work::Webhook(d, loaded)
            }
            Ok(Job::ConnectorSync(j)) => {
                let loaded = self.connector_jobs.remove(&j.job_id);
                Work::ConnectorSync(j, loaded)
            }
            // Two polls of one config in a batch: only the current one matters; the other is stale either way.
            Ok(Job::ConnectorPoll(p)) => {
                let loaded = self.polls.get(&p.config_id).cloned();
                Work::ConnectorPoll(p, loaded)
            }
            Err(e) => Work::Undecodable(e),
        }
    }
}

/// A job claimed from the queue, ready to run.
pub(super) struct Claimed {
    pub(super) task_id: TaskId,
    pub(super) attempt: usize,
    pub(super) work: Work,
}

impl Worker {
    /// Run a job's handler; `Err` is our own infrastructure failing (the job runs again).
    pub(super) async fn handle(&self, work: Work) -> Result<Done, String> {
        let result = match work {
            Work::Webhook(job, delivery) => webhook::handle(&self.webhook, &job, delivery)
                .await
                .map(|(handled, e)| (handled, Effects::Webhook(e))),
            Work::ConnectorSync(job, loaded) => {
                connector::handle_sync(&self.connector, &job, loaded)
                    .await
                    .map(|(handled, e)| (handled, Effects::Sync(e)))
            }
            Work::ConnectorPoll(job, loaded) => {
                connector::handle_poll(&self.connector, &job, loaded)
                    .await
                    .map(|(handled, e)| (handled, Effects::Poll(e)))
            }
            Work::Undecodable(e) => Err(anyhow::anyhow!("undecodable job: {e}")),
        }
        .map(|(handled, effect)| Done { handled, effect })
        .map_err(|e| format!("{e:#}"));
        self.faults.at(Step::Ran).await?;
        result
    }

    /// Load the rows a batch of jobs refers to: one query per kind, for the deliveries not `known` already.
    pub(super) async fn load(
        &self,
        jobs: &[Result<Job, String>],
        mut known: Known,
    ) -> anyhow::Result<Loaded> {
        let (mut delivery_ids, mut job_ids, mut poll_ids) = (Vec::new(), Vec::new(), Vec::new());
        for job in jobs.iter().flatten() {
            match job {
                Job::WebhookDelivery(d) if known.contains_key(&d.delivery_id) => {}
                Job::WebhookDelivery(d) => delivery_ids.push(d.delivery_id),
                Job::ConnectorSync(j) => job_ids.push(j.job_id),
                Job::ConnectorPoll(p) => poll_ids.push(p.config_id),
            }
        }
        let (deliveries, connector_jobs, polls) = tokio::try_join!(
            WebhookDeps::load(&self.pool, &delivery_ids),
            ConnectorDeps::load(&self.pool, &job_ids),
            async { Ok::<_, anyhow::Error>(load::load_polls(&self.pool, &poll_ids).await?) },
        )?;
        known.extend(deliveries);
        Ok(Loaded {
            deliveries: known,
            connector_jobs,
            polls,
        })
    }
}
