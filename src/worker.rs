//! The worker role: claims due jobs from the apalis-postgres queue, runs them with bounded concurrency, and writes
//! what they did together with their acknowledgements in one transaction per flush. It heartbeats, re-queues the
//! jobs of dead workers, and wakes on apalis' insert notifications (polling covers jobs scheduled for later).
//!
//! `run_once` / `run_pending_jobs` are the same code the loop runs; tests call them by hand.

use std::sync::Arc;
use std::time::Duration;

use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config as ApalisConfig, PgTask};
use jobs::Job;
use jobs::connector::handler::{
    self as connector, ConnectorDeps, ConnectorJobToRun, PollConnector, PollToRun, SyncConnector,
};
use jobs::ports::DeliveryToSend;
use jobs::webhook::{self, DeliverWebhook, Effect, Handled, WebhookDeps};
use sqlx::PgPool;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::connector_effects::{self, Topics};
use crate::db::queue::{self, Ack};
use crate::db::{connectors, deliveries, effects};
use crate::metrics::Metrics;

/// One worker process's view of the queue.
#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    apalis: ApalisConfig,
    context: WorkerContext,
    webhook: WebhookDeps,
    connector: ConnectorDeps,
    concurrency: usize,
    poll_interval: Duration,
    topics: Topics,
    sweep_every: Duration,
    job_retention: Duration,
    metrics: Arc<Metrics>,
}

/// What a job came to, and the effect it asks the writer to apply.
enum Done {
    Webhook(Handled, Effect),
    Connector(connector::Handled, connector::Effect),
}

impl Done {
    fn not_yet_due(&self) -> bool {
        matches!(
            self,
            Done::Webhook(Handled::NotYetDue, _)
                | Done::Connector(connector::Handled::NotYetDue, _)
        )
    }
}

/// A job that ran: what apalis needs to hear, and what it asks to write.
struct Finished {
    task_id: TaskId,
    attempt: usize,
    result: Result<Done, String>,
}

/// A claimed job with the row it refers to, loaded with the rest of its batch.
enum Work {
    Webhook(DeliverWebhook, Option<DeliveryToSend>),
    ConnectorSync(SyncConnector, Option<ConnectorJobToRun>),
    ConnectorPoll(PollConnector, Option<PollToRun>),
    Undecodable(String),
}

struct Claimed {
    task_id: TaskId,
    attempt: usize,
    work: Work,
}

/// What one `run_once` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs claimed and run.
    pub jobs: usize,
    /// Of those, jobs that were early and re-queued for their due time.
    pub not_yet_due: usize,
}

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// apalis queue config (batch size, heartbeats).
    pub apalis: ApalisConfig,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Idle poll interval.
    pub poll_interval: Duration,
    /// Topics for published events (webhook.*, connector.dead_lettered) and records pulled from channels.
    pub topics: Topics,
    /// How often finished jobs are swept.
    pub sweep_every: Duration,
    /// How long acknowledged jobs stay in apalis.jobs.
    pub job_retention: Duration,
}

impl Worker {
    /// A worker named `name` (must be unique per process).
    pub fn new(
        pool: PgPool,
        name: &str,
        webhook: WebhookDeps,
        connector: ConnectorDeps,
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool,
            apalis: settings.apalis,
            context: WorkerContext::new(name),
            webhook,
            connector,
            concurrency: settings.concurrency,
            poll_interval: settings.poll_interval,
            topics: settings.topics,
            sweep_every: settings.sweep_every,
            job_retention: settings.job_retention,
            metrics,
        }
    }

    /// This worker's name.
    pub fn name(&self) -> &str {
        self.context.name()
    }

    /// Register in `apalis.workers` (and re-queue jobs of workers that died).
    pub async fn register(&self) -> anyhow::Result<()> {
        queue::register(&self.pool, &self.apalis, &self.context).await?;
        Ok(())
    }

    /// Claim up to `limit` due jobs and load their deliveries in one query.
    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Claimed>> {
        let tasks: Vec<PgTask> = queue::fetch(
            &self.pool,
            &self.apalis.clone().batch_size(limit.max(1)),
            &self.context,
        )
        .await?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<Result<Job, String>> = tasks
            .iter()
            .map(|t| Job::decode(&t.args).map_err(|e| e.to_string()))
            .collect();
        let (mut delivery_ids, mut job_ids, mut poll_ids) = (Vec::new(), Vec::new(), Vec::new());
        for job in jobs.iter().flatten() {
            match job {
                Job::WebhookDelivery(d) => delivery_ids.push(d.delivery_id),
                Job::ConnectorSync(j) => job_ids.push(j.job_id),
                Job::ConnectorPoll(p) => poll_ids.push(p.config_id),
            }
        }
        let (mut deliveries, mut connector_jobs, polls) = tokio::try_join!(
            deliveries::load_for_send(&self.pool, &delivery_ids),
            async { Ok::<_, anyhow::Error>(connectors::load_jobs(&self.pool, &job_ids).await?) },
            async { Ok::<_, anyhow::Error>(connectors::load_polls(&self.pool, &poll_ids).await?) },
        )?;
        Ok(tasks
            .into_iter()
            .zip(jobs)
            .filter_map(|(task, job)| {
                let task_id = task.task_id().cloned()?;
                let work = match job {
                    Ok(Job::WebhookDelivery(d)) => {
                        let loaded = deliveries.remove(&d.delivery_id);
                        Work::Webhook(d, loaded)
                    }
                    Ok(Job::ConnectorSync(j)) => {
                        let loaded = connector_jobs.remove(&j.job_id);
                        Work::ConnectorSync(j, loaded)
                    }
                    // Two polls of one config in a batch: only the current one matters; the other is stale either way.
                    Ok(Job::ConnectorPoll(p)) => {
                        let loaded = polls.get(&p.config_id).cloned();
                        Work::ConnectorPoll(p, loaded)
                    }
                    Err(e) => Work::Undecodable(e),
                };
                Some(Claimed {
                    task_id,
                    attempt: task.attempt() + 1,
                    work,
                })
            })
            .collect())
    }

    async fn execute(self, claimed: Claimed) -> Finished {
        let Claimed {
            task_id,
            attempt,
            work,
        } = claimed;
        let result = match work {
            Work::Webhook(job, delivery) => webhook::handle(&self.webhook, &job, delivery)
                .await
                .map(|(h, e)| Done::Webhook(h, e)),
            Work::ConnectorSync(job, loaded) => {
                connector::handle_sync(&self.connector, &job, loaded)
                    .await
                    .map(|(h, e)| Done::Connector(h, e))
            }
            Work::ConnectorPoll(job, loaded) => {
                connector::handle_poll(&self.connector, &job, loaded)
                    .await
                    .map(|(h, e)| Done::Connector(h, e))
            }
            Work::Undecodable(e) => Err(anyhow::anyhow!("undecodable job: {e}")),
        }
        .map_err(|e| format!("{e:#}"));
        if let Err(e) = &result {
            tracing::warn!(%task_id, attempt, error = %e, "job failed on our side; apalis will run it again");
        }
        Finished {
            task_id,
            attempt,
            result,
        }
    }

    /// Write the effects of finished jobs and acknowledge them, atomically: a crash before commit re-runs them.
    async fn flush(&self, finished: &[Finished]) -> anyhow::Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let mut effects: Vec<&Effect> = Vec::new();
        let mut connector_effects: Vec<&connector::Effect> = Vec::new();
        for done in finished.iter().filter_map(|f| f.result.as_ref().ok()) {
            match done {
                Done::Webhook(_, e) => effects.push(e),
                Done::Connector(_, e) => connector_effects.push(e),
            }
        }
        let acks: Vec<Ack> = finished
            .iter()
            .map(|f| Ack {
                task_id: f.task_id.clone(),
                attempt: f.attempt,
                result: f.result.as_ref().map(|_| ()).map_err(Clone::clone),
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        effects::apply(&mut tx, &effects, &self.topics.publish).await?;
        connector_effects::apply(&mut tx, &connector_effects, &self.topics).await?;
        queue::ack(&mut tx, &self.context, &acks).await?;
        tx.commit().await?;
        for f in finished {
            let webhook = match &f.result {
                Ok(Done::Webhook(h, _)) => Ok(h),
                Ok(Done::Connector(h, _)) => {
                    self.metrics.record_connector(h);
                    continue;
                }
                Err(e) => Err(e),
            };
            self.metrics.record_handled(webhook);
            if let Ok(Done::Webhook(_, Effect::Record(r))) = &f.result {
                let delivered = matches!(r.outcome, workflows::AttemptOutcome::Delivered { .. });
                let created = r.delivery.payload["occurredAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                let after = created
                    .map(|c| (r.finished_at - c.with_timezone(&chrono::Utc)).num_milliseconds());
                self.metrics
                    .record_attempt(r.attempt_number, after.filter(|_| delivered));
            }
        }
        Ok(())
    }

    /// Claim one batch of due jobs, run them all, write and acknowledge them.
    pub async fn run_once(&self) -> anyhow::Result<RunReport> {
        let claimed = self.claim(self.apalis.batch_size).await?;
        let mut running = JoinSet::new();
        for c in claimed {
            running.spawn(self.clone().execute(c));
        }
        let finished = running.join_all().await;
        self.flush(&finished).await?;
        let not_yet_due = finished
            .iter()
            .filter(|f| f.result.as_ref().is_ok_and(Done::not_yet_due))
            .count();
        Ok(RunReport {
            jobs: finished.len(),
            not_yet_due,
        })
    }

    /// Run batches until nothing is due by this worker's clock. Returns how many jobs made progress.
    pub async fn run_pending_jobs(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let report = self.run_once().await?;
            total += report.jobs - report.not_yet_due;
            if report.jobs == report.not_yet_due {
                return Ok(total);
            }
        }
    }

    /// The worker loop: until `shutdown`, keep up to `concurrency` jobs running; then drain, write and acknowledge.
    ///
    /// Three parts run at once so none waits on another: the claimer fetches due jobs in batches whenever at least
    /// half a batch of slots is free; each job runs in its own task and hands its result to the writer; the writer
    /// writes whatever has finished, and acknowledges it, in one transaction per flush.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = tracing::info_span!("worker", worker = %self.name());
        async move {
            let mut backoff = Backoff::default();
            while let Err(e) = self.register().await {
                tracing::warn!(error = %e, "cannot register worker; retrying");
                if backoff.wait(&shutdown).await.is_err() {
                    return;
                }
            }
            let wake = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(listen_for_new_jobs(
                self.pool.clone(),
                wake.clone(),
                shutdown.clone(),
            ));
            let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
            let (to_writer, from_jobs) =
                tokio::sync::mpsc::channel::<(Finished, OwnedSemaphorePermit)>(self.concurrency);
            let writer = tokio::spawn(self.clone().write_finished(from_jobs));
            let heartbeat = tokio::spawn(self.clone().heartbeat(shutdown.clone()));
            let sweeper = tokio::spawn(self.clone().sweep(
                self.sweep_every,
                self.job_retention,
                shutdown.clone(),
            ));
            let claim_at_least = (self.apalis.batch_size / 2).clamp(1, self.concurrency);
            while !shutdown.is_cancelled() {
                let free = slots.available_permits();
                if free < claim_at_least {
                    tokio::select! {
                        _ = wait_for_permits(&slots, claim_at_least) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
                let wanted = free.min(self.apalis.batch_size);
                match self.claim(wanted).await {
                    Ok(claimed) => {
                        backoff.reset();
                        let drained = claimed.len() < wanted;
                        for c in claimed {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let (job, tx) = (self.clone(), to_writer.clone());
                            tokio::spawn(async move {
                                // The slot is freed by the writer once the result is written and acknowledged, so
                                // `concurrency` bounds the claimed-but-unacknowledged jobs: what a crash can re-send.
                                let _ = tx.send((job.execute(c).await, permit)).await;
                            });
                        }
                        if drained {
                            tokio::select! {
                                _ = tokio::time::sleep(self.poll_interval) => {}
                                _ = wake.notified() => {}
                                _ = shutdown.cancelled() => {}
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot claim jobs; backing off");
                        let _ = backoff.wait(&shutdown).await;
                    }
                }
            }
            // Drain: every running job finishes and hands its result to the writer, which writes it and stops.
            // Bounded: if Postgres stays down, stop anyway; unacknowledged jobs are re-queued by orphan recovery.
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(self.concurrency as u32)).await;
            if drained.is_err() {
                tracing::warn!("could not write every finished job before shutting down; they will run again elsewhere");
                writer.abort();
            }
            drop(to_writer);
            let _ = writer.await;
            heartbeat.abort();
            sweeper.abort();
            tracing::info!("worker drained and stopped");
        }
        .instrument(span)
        .await
    }

    /// Write finished jobs as they come, batching whatever has arrived; retry a failed write until it succeeds.
    async fn write_finished(
        self,
        mut from_jobs: tokio::sync::mpsc::Receiver<(Finished, OwnedSemaphorePermit)>,
    ) {
        let mut pending: Vec<Finished> = Vec::new();
        let mut slots: Vec<OwnedSemaphorePermit> = Vec::new();
        let mut backoff = Backoff::default();
        let never = CancellationToken::new();
        loop {
            if pending.is_empty() {
                match from_jobs.recv().await {
                    Some((f, slot)) => {
                        pending.push(f);
                        slots.push(slot);
                    }
                    None => return,
                }
            }
            while let Ok((f, slot)) = from_jobs.try_recv() {
                pending.push(f);
                slots.push(slot);
            }
            match self.flush(&pending).await {
                Ok(()) => {
                    pending.clear();
                    // Written and acknowledged: these jobs' slots may take new work.
                    slots.clear();
                    backoff.reset();
                }
                Err(e) => {
                    // Unacknowledged jobs stay locked by us; nothing is lost, they are written once Postgres answers.
                    tracing::warn!(error = %format!("{e:#}"), pending = pending.len(), "cannot write finished jobs yet");
                    let _ = backoff.wait(&never).await;
                }
            }
        }
    }

    /// Beat every heartbeat interval and re-queue the jobs of workers that stopped beating.
    async fn heartbeat(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.apalis.heartbeat_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match queue::heartbeat(&self.pool, &self.apalis, &self.context).await {
                Ok(0) => {}
                Ok(requeued) => tracing::info!(requeued, "re-queued jobs of dead workers"),
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
        }
    }

    /// Every `every`, delete acknowledged jobs older than `retention` and refresh statistics.
    async fn sweep(self, every: Duration, retention: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
            match queue::sweep_finished(&self.pool, retention).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "swept finished jobs"),
                Err(e) => tracing::warn!(error = %e, "sweeping finished jobs failed"),
            }
        }
    }
}

/// How long a stopping worker waits for its running jobs to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves once `n` permits are free (without taking them).
async fn wait_for_permits(slots: &tokio::sync::Semaphore, n: usize) {
    if let Ok(permits) = slots.acquire_many(n as u32).await {
        drop(permits);
    }
}

/// Wake the worker when apalis' insert trigger announces a job due now (retries scheduled later are found by polling).
async fn listen_for_new_jobs(
    pool: PgPool,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::debug!(error = %e, "cannot LISTEN yet; polling meanwhile");
                let _ = backoff.wait(&shutdown).await;
                continue;
            }
        };
        if listener.listen("apalis::job::insert").await.is_err() {
            let _ = backoff.wait(&shutdown).await;
            continue;
        }
        backoff.reset();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                notification = listener.recv() => match notification {
                    Ok(n) if n.payload().contains(jobs::job::QUEUE) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    }
}

/// Exponential backoff from 100 ms to 5 s for infrastructure errors.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Sleep for the next delay; `Err` if cancelled meanwhile.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), ()> {
        let delay =
            Duration::from_millis(100u64.saturating_mul(1 << self.failures.min(6)).min(5_000));
        self.failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = cancel.cancelled() => Err(()),
        }
    }

    /// Back to the shortest delay.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}
