//! The worker role: claims due jobs from the apalis-postgres queue, runs them with bounded concurrency, and writes
//! what they did together with their acknowledgements in one transaction per flush. Each claim is a lease the
//! worker renews while it holds the job; expired leases are re-queued (`lease`), whoever held them. It wakes on
//! apalis' insert notifications (polling covers jobs scheduled for later).
//!
//! `run_once` / `run_pending_jobs` are the same code the loop (`runner`) runs; tests call them by hand.

mod dispatch;
pub mod faults;
pub mod handoff;
pub mod lease;
pub mod metrics;
mod runner;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use crate::Job;
use crate::attempt::Effect;
use crate::connector::handler::ConnectorDeps;
use crate::webhook::WebhookDeps;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::Config as ApalisConfig;
use futures::FutureExt;
use sqlx::PgPool;
use tokio::task::JoinSet;

pub use self::dispatch::Known;
use self::dispatch::{Claimed, Done, Effects};
pub use crate::backoff::Backoff;
use crate::queue::claim::{self, Cursor, LaneLimits};
use crate::queue::effects::{self, Batch, Topics};
pub use crate::queue::vacuum::{Vacuum, VacuumMode};
use crate::queue::{self, Ack};
pub use faults::{Faults, NoFaults, Step};
pub use handoff::{Handoff, Reservation};
pub use lease::{Held, LeaseSettings};
pub use metrics::{JobMetrics, NoMetrics};

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
    idle_poll: Duration,
    topics: Topics,
    sweep_every: Duration,
    job_retention: Duration,
    vacuum: Vacuum,
    lease: LeaseSettings,
    held: Held,
    lanes: LaneLimits,
    /// Where this process's ingest hands this worker the jobs it queues, while it runs.
    handoff: Handoff,
    /// Where this worker's next claim resumes its walk over the lanes (one claim at a time).
    cursor: Arc<tokio::sync::Mutex<Cursor>>,
    faults: Arc<dyn Faults>,
    metrics: Arc<dyn JobMetrics>,
}

/// A job that ran: what apalis needs to hear, and what it asks to write.
struct Finished {
    task_id: TaskId,
    attempt: usize,
    result: Result<Done, String>,
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
#[derive(Clone)]
pub struct WorkerSettings {
    /// apalis queue config (batch size, heartbeats).
    pub apalis: ApalisConfig,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How often a worker looks again while jobs are due that it could not claim (their lanes full).
    pub poll_interval: Duration,
    /// The longest a worker with nothing due waits before looking again (it sleeps until the next job is due, and
    /// is woken by new jobs; this is the backstop).
    pub idle_poll: Duration,
    /// Topics for published events (webhook.*, connector.dead_lettered) and records pulled from channels.
    pub topics: Topics,
    /// How often finished jobs are swept.
    pub sweep_every: Duration,
    /// How long finished jobs stay in apalis.jobs (`ZERO`: deleted when acknowledged).
    pub job_retention: Duration,
    /// Whether the sweep vacuums churned tables, and when.
    pub vacuum: Vacuum,
    /// Leases on claimed jobs.
    pub lease: LeaseSettings,
    /// Jobs in flight per lane (subscription, connector) across every worker.
    pub lanes: LaneLimits,
    /// Where this process's ingest finds the worker to hand its jobs to (`Handoff::default()`: one nobody else
    /// knows, so nothing is handed off).
    pub handoff: Handoff,
    /// Where tests inject failures (`NoFaults` in production).
    pub faults: Arc<dyn Faults>,
}

impl Worker {
    /// A worker named `name` (must be unique per process).
    pub fn new(
        pool: PgPool,
        name: &str,
        webhook: WebhookDeps,
        connector: ConnectorDeps,
        settings: WorkerSettings,
        metrics: Arc<dyn JobMetrics>,
    ) -> Self {
        Self {
            pool,
            apalis: settings.apalis,
            context: WorkerContext::new(name),
            webhook,
            connector,
            concurrency: settings.concurrency,
            poll_interval: settings.poll_interval,
            idle_poll: settings.idle_poll,
            topics: settings.topics,
            sweep_every: settings.sweep_every,
            job_retention: settings.job_retention,
            vacuum: settings.vacuum,
            lease: settings.lease,
            held: Held::default(),
            lanes: settings.lanes,
            handoff: settings.handoff,
            cursor: Arc::default(),
            faults: settings.faults,
            metrics,
        }
    }

    /// This worker's name.
    pub fn name(&self) -> &str {
        self.context.name()
    }

    /// Register in `apalis.workers` (the jobs this worker claims refer to that row).
    pub async fn register(&self) -> anyhow::Result<()> {
        queue::register(&self.pool, &self.context).await?;
        Ok(())
    }

    /// The jobs this worker holds and renews the leases of.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// Claim up to `limit` due jobs and load their deliveries in one query. The jobs are held (their leases renewed)
    /// only once this returns them: if anything fails after the claim committed, nobody here knows them, and the
    /// rescue re-queues them when their lease expires.
    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Claimed>> {
        let tasks = {
            let mut cursor = self.cursor.lock().await;
            claim::claim(
                &self.pool,
                self.context.name(),
                limit,
                self.lanes,
                &mut cursor,
            )
            .await?
        };
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        self.take(tasks, Known::new()).await
    }

    /// Take jobs claimed for this worker (by its claim, or handed off by ingest): decode them, load the rows they
    /// refer to in one query per kind (but the deliveries in `known`, as the ingest that queued them wrote them),
    /// then hold them.
    async fn take(
        &self,
        tasks: Vec<claim::ClaimedJob>,
        known: Known,
    ) -> anyhow::Result<Vec<Claimed>> {
        self.faults
            .at(Step::Claimed)
            .await
            .map_err(|e| anyhow::anyhow!("claim reply lost: {e}"))?;
        let jobs: Vec<Result<Job, String>> = tasks
            .iter()
            .map(|t| Job::decode(&t.payload).map_err(|e| e.to_string()))
            .collect();
        let mut loaded = self.load(&jobs, known).await?;
        let claimed: Vec<Claimed> = tasks
            .into_iter()
            .zip(jobs)
            .map(|(task, job)| Claimed {
                task_id: task.task_id,
                attempt: task.attempts + 1,
                work: loaded.work(job),
            })
            .collect();
        self.held
            .hold(claimed.iter().map(|c| c.task_id.to_string()));
        Ok(claimed)
    }

    /// Run one claimed job. A panic in its handler becomes an infrastructure error, so the job is acknowledged as
    /// failed (apalis runs it again) and its slot is freed, instead of staying claimed with nobody running it.
    async fn execute(self, claimed: Claimed) -> Finished {
        let Claimed {
            task_id,
            attempt,
            work,
        } = claimed;
        let result = AssertUnwindSafe(self.handle(work))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(format!("job panicked: {}", panic_message(&panic))));
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
    /// Returns whether the flush left work for a claim: jobs it queued (next attempts, polls, deferrals, due now or
    /// later) or jobs it failed (due again at once).
    async fn flush(&self, finished: &[Finished]) -> anyhow::Result<bool> {
        if finished.is_empty() {
            return Ok(false);
        }
        let mut batch = Batch::default();
        for done in finished.iter().filter_map(|f| f.result.as_ref().ok()) {
            match &done.effect {
                Effects::Webhook(e) => batch.webhook.push(e),
                Effects::Sync(e) => batch.sync.push(e),
                Effects::Poll(e) => batch.poll.push(e),
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
        // A deadlock or serialization failure rolled the whole flush back: write it again, rather than leave its
        // jobs to the lease rescue (which would send them again).
        let mut tries = 1;
        let queued = loop {
            match self.write(&batch, &acks).await {
                Err(e) if tries < FLUSH_TRIES && rolled_back_by_conflict(&e) => {
                    tracing::debug!(error = %e, tries, "flush rolled back by a lock conflict; writing it again");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                    tries += 1;
                }
                written => break written?,
            }
        };
        let injected = |e| anyhow::anyhow!("connection lost: {e}");
        self.faults.at(Step::Committed).await.map_err(injected)?;
        // Acknowledged: stop renewing their leases.
        self.held
            .release(finished.iter().map(|f| f.task_id.to_string()));
        finished.iter().for_each(|f| self.count(f));
        Ok(queued > 0 || finished.iter().any(|f| f.result.is_err()))
    }

    /// One flush transaction: the batch's effects and acknowledgements.
    async fn write(&self, batch: &Batch<'_>, acks: &[Ack]) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let queued = effects::apply(&mut tx, batch, &self.topics).await?;
        queue::ack(&mut tx, &self.context, acks, !self.job_retention.is_zero()).await?;
        let injected = |e| anyhow::anyhow!("connection lost: {e}");
        self.faults.at(Step::BeforeCommit).await.map_err(injected)?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Count a written job in the metrics.
    fn count(&self, f: &Finished) {
        let done = match &f.result {
            Ok(done) => done,
            Err(e) => return self.metrics.record_handled(Err(e)),
        };
        let record = match &done.effect {
            Effects::Webhook(Effect::Record(r)) => r,
            Effects::Webhook(_) => return self.metrics.record_handled(Ok(&done.handled)),
            Effects::Sync(_) | Effects::Poll(_) => {
                return self.metrics.record_connector(&done.handled);
            }
        };
        self.metrics.record_handled(Ok(&done.handled));
        let delivered = record.decision.status == workflows::DeliveryStatus::Delivered;
        let after = (record.finished_at - record.loaded.occurred_at).num_milliseconds();
        self.metrics
            .record_attempt(record.attempt_number, Some(after).filter(|_| delivered));
    }

    /// Claim one batch of due jobs, run them all, write and acknowledge them. Nothing renews leases here (that is
    /// the loop's job): a batch that outlives its lease may be rescued and run again by another worker.
    pub async fn run_once(&self) -> anyhow::Result<RunReport> {
        let claimed = self.claim(self.apalis.batch_size).await?;
        let mut running = JoinSet::new();
        for c in claimed {
            running.spawn(self.clone().execute(c));
        }
        let finished = running.join_all().await;
        if let Err(e) = self.flush(&finished).await {
            // Not written: leave these jobs to the rescue rather than hold them with nobody to write them.
            let ids: Vec<String> = finished.iter().map(|f| f.task_id.to_string()).collect();
            self.held.release(&ids);
            return Err(e);
        }
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
}

/// How many times a flush is written before its jobs are left to the lease rescue.
const FLUSH_TRIES: u32 = 3;

/// Whether Postgres rolled a transaction back for a deadlock (`40P01`) or a serialization failure (`40001`): the
/// same writes in a new transaction can succeed.
fn rolled_back_by_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let code = match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => db.code(),
            _ => match cause.downcast_ref::<apalis_postgres::Error>() {
                Some(apalis_postgres::Error::Database(sqlx::Error::Database(db))) => db.code(),
                _ => None,
            },
        };
        code.is_some_and(|c| c == "40P01" || c == "40001")
    })
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
