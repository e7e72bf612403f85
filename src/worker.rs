//! The worker role: claims due jobs from the apalis-postgres queue, runs them with bounded concurrency,
//! acknowledges them, heartbeats, and re-queues the jobs of dead workers.
//!
//! `run_once` / `run_pending_jobs` are the same code the loop runs; tests call them by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config as ApalisConfig, PgTask};
use jobs::Job;
use jobs::webhook::{self, Handled, WebhookDeps};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::queue::{self, Ack};
use crate::metrics::Metrics;

/// One worker process's view of the queue.
#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    apalis: ApalisConfig,
    context: WorkerContext,
    webhook: WebhookDeps,
    concurrency: usize,
    poll_interval: Duration,
    metrics: Arc<Metrics>,
}

impl Worker {
    /// A worker named `name` (must be unique per process).
    pub fn new(
        pool: PgPool,
        apalis: ApalisConfig,
        name: &str,
        webhook: WebhookDeps,
        concurrency: usize,
        poll_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool,
            apalis,
            context: WorkerContext::new(name),
            webhook,
            concurrency,
            poll_interval,
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

    /// Claim one batch of due jobs, run them all, acknowledge them.
    pub async fn run_once(&self) -> anyhow::Result<RunReport> {
        let tasks = queue::fetch(&self.pool, &self.apalis, &self.context).await?;
        let mut running = JoinSet::new();
        for task in tasks {
            running.spawn(self.clone().execute(task));
        }
        let done = running.join_all().await;
        let report = RunReport {
            jobs: done.len(),
            not_yet_due: done
                .iter()
                .filter(|(_, h)| *h == Some(Handled::NotYetDue))
                .count(),
        };
        let acks: Vec<Ack> = done.into_iter().map(|(ack, _)| ack).collect();
        queue::ack(&self.pool, &self.context, &acks).await?;
        Ok(report)
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

    async fn execute(self, task: PgTask) -> (Ack, Option<Handled>) {
        let Some(task_id) = task.task_id().cloned() else {
            unreachable!("tasks fetched from Postgres always carry their id")
        };
        let attempt = task.attempt() + 1;
        let handled = match Job::decode(&task.args) {
            Ok(Job::WebhookDelivery(job)) => webhook::handle(&self.webhook, &job).await,
            Err(e) => {
                tracing::error!(%task_id, error = %e, "undecodable job left as Failed in apalis.jobs for inspection");
                return (
                    Ack {
                        task_id,
                        attempt: 25,
                        result: Err(e.to_string()),
                    },
                    None,
                );
            }
        };
        self.metrics.record_handled(&handled);
        match handled {
            Ok(h) => (
                Ack {
                    task_id,
                    attempt,
                    result: Ok(()),
                },
                Some(h),
            ),
            Err(e) => {
                tracing::warn!(%task_id, attempt, error = %format!("{e:#}"), "job hit an infrastructure error; apalis will run it again");
                (
                    Ack {
                        task_id,
                        attempt,
                        result: Err(format!("{e:#}")),
                    },
                    None,
                )
            }
        }
    }

    /// The worker loop: until `shutdown`, keep up to `concurrency` jobs running; then drain and acknowledge.
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
            let mut running: JoinSet<(Ack, Option<Handled>)> = JoinSet::new();
            let mut unacked: Vec<Ack> = Vec::new();
            let mut next_heartbeat = Instant::now() + self.apalis.heartbeat_interval;
            let mut drain_retries = 0;
            loop {
                while let Some(done) = running.try_join_next() {
                    unacked.extend(done.ok().map(|(ack, _)| ack));
                }
                if !unacked.is_empty() {
                    match queue::ack(&self.pool, &self.context, &unacked).await {
                        Ok(()) => unacked.clear(),
                        Err(e) => tracing::warn!(error = %e, pending = unacked.len(), "cannot acknowledge jobs yet"),
                    }
                }
                if Instant::now() >= next_heartbeat {
                    match queue::heartbeat(&self.pool, &self.apalis, &self.context).await {
                        Ok(0) => {}
                        Ok(requeued) => tracing::info!(requeued, "re-queued jobs of dead workers"),
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                    next_heartbeat = Instant::now() + self.apalis.heartbeat_interval;
                }
                if shutdown.is_cancelled() && running.is_empty() {
                    // Unacknowledged jobs after shutdown are re-queued by orphan recovery once our heartbeat stops.
                    if unacked.is_empty() || drain_retries >= 20 {
                        break;
                    }
                    drain_retries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                let wanted = self.concurrency.saturating_sub(running.len()).min(self.apalis.batch_size);
                let mut queue_drained = true;
                if wanted > 0 && !shutdown.is_cancelled() {
                    match queue::fetch(&self.pool, &self.apalis.clone().batch_size(wanted), &self.context).await {
                        Ok(tasks) => {
                            backoff.reset();
                            queue_drained = tasks.len() < wanted;
                            for task in tasks {
                                running.spawn(self.clone().execute(task));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot fetch jobs; backing off");
                            let _ = backoff.wait(&shutdown).await;
                            continue;
                        }
                    }
                }
                let slots_full = running.len() >= self.concurrency;
                if queue_drained || slots_full {
                    // Wait for a job to finish, the poll interval, or shutdown.
                    tokio::select! {
                        Some(done) = running.join_next(), if !running.is_empty() => unacked.extend(done.ok().map(|(ack, _)| ack)),
                        _ = tokio::time::sleep(self.poll_interval), if !slots_full => {}
                        _ = tokio::time::sleep_until(next_heartbeat.into()) => {}
                        _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
                    }
                }
            }
            tracing::info!("worker drained and stopped");
        }
        .instrument(span)
        .await
    }
}

/// What one `run_once` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs claimed and run.
    pub jobs: usize,
    /// Of those, jobs that were early and re-queued for their due time.
    pub not_yet_due: usize,
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
