//! The worker loop: a claimer, one task per running job, a writer, and the periodic helpers (lease renewal and
//! rescue, heartbeat, sweep, promotion of parked jobs, the LISTEN that wakes the claimer).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use sqlx::PgPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Backoff, Finished, Worker, panic_message};
use crate::queue;

/// How long a stopping worker waits for its running jobs to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished job on its way to the writer, with the slot it frees once written.
pub(super) type ToWrite = (Finished, OwnedSemaphorePermit);

impl Worker {
    /// The worker loop: until `shutdown`, keep up to `concurrency` jobs running; then drain, write and acknowledge.
    ///
    /// Three parts run at once so none waits on another: the claimer fetches due jobs in batches whenever at least
    /// half a batch of slots is free; each job runs in its own task and hands its result to the writer; the writer
    /// writes whatever has finished, and acknowledges it, in one transaction per flush. Leases are renewed and
    /// expired ones rescued until the drain is over, so a slow drain does not hand running jobs to another worker.
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
            let wake = Arc::new(Notify::new());
            let helpers = CancellationToken::new();
            let helper_tasks = self.spawn_helpers(&wake, &shutdown, &helpers);
            let slots = Arc::new(Semaphore::new(self.concurrency));
            let (to_writer, from_jobs) = tokio::sync::mpsc::channel::<ToWrite>(self.concurrency);
            // Set by the claimer while due jobs wait that it could not take; read by the writer after each flush.
            let due_left = Arc::new(AtomicBool::new(false));
            let writer = tokio::spawn(self.clone().write_finished(
                from_jobs,
                wake.clone(),
                due_left.clone(),
            ));
            self.handoff.connect(super::handoff::Link {
                worker: self.clone(),
                slots: slots.clone(),
                to_writer: to_writer.clone(),
            });
            self.claim_until(&shutdown, &slots, &to_writer, &wake, &due_left)
                .await;
            self.handoff.disconnect(self.name());
            // Drain: every running job finishes and hands its result to the writer, which writes it and stops.
            // Bounded: if Postgres stays down, stop anyway; unacknowledged jobs are re-queued when their lease expires.
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(self.concurrency as u32)).await;
            if drained.is_err() {
                tracing::warn!("could not write every finished job before shutting down; they will run again elsewhere");
                writer.abort();
            }
            drop(to_writer);
            let _ = writer.await;
            helpers.cancel();
            for task in helper_tasks {
                let _ = task.await;
            }
            tracing::info!("worker drained and stopped");
        }
        .instrument(span)
        .await
    }

    /// LISTEN for new jobs (until `shutdown`); renew leases, rescue expired ones, heartbeat, sweep and promote parked
    /// jobs (until `helpers`).
    fn spawn_helpers(
        &self,
        wake: &Arc<Notify>,
        shutdown: &CancellationToken,
        helpers: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(listen_for_new_jobs(
                self.pool.clone(),
                wake.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(self.clone().renew_leases(helpers.clone())),
            tokio::spawn(self.clone().rescue_expired(wake.clone(), helpers.clone())),
            tokio::spawn(self.clone().heartbeat(helpers.clone())),
            tokio::spawn(self.clone().promote_parked(helpers.clone())),
            tokio::spawn(
                self.clone()
                    .sweep(self.sweep_every, self.job_retention, helpers.clone()),
            ),
        ]
    }

    /// Claim and start jobs whenever enough slots are free, until `shutdown`.
    async fn claim_until(
        &self,
        shutdown: &CancellationToken,
        slots: &Arc<Semaphore>,
        to_writer: &tokio::sync::mpsc::Sender<ToWrite>,
        wake: &Notify,
        due_left: &AtomicBool,
    ) {
        let mut backoff = Backoff::default();
        let claim_at_least = (self.apalis.batch_size / 2).clamp(1, self.concurrency);
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            if free < claim_at_least {
                tokio::select! {
                    _ = wait_for_permits(slots, claim_at_least) => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
            let wanted = free.min(self.apalis.batch_size);
            let claimed = match self.claim(wanted).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot claim jobs; backing off");
                    let _ = backoff.wait(shutdown).await;
                    continue;
                }
            };
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
                let (pause, left) = self.pause_when_drained().await;
                due_left.store(left, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// How long a claimer that got less than it asked for waits before claiming again, unless woken (a new job
    /// announced, or a flush freeing lane room while jobs are due): until the next scheduled job is due, so a retry
    /// starts on time without polling, and at most `idle_poll` as a backstop; `poll_interval` while jobs are due
    /// that it could not claim (their lanes full, or another worker claiming them). Also whether such jobs are left.
    async fn pause_when_drained(&self) -> (Duration, bool) {
        match queue::next_due(&self.pool).await {
            Ok(None) => (self.idle_poll, false),
            Ok(Some(due)) if due.is_zero() => (self.poll_interval, true),
            Ok(Some(due)) => (due.min(self.idle_poll), false),
            Err(_) => (self.poll_interval, true),
        }
    }

    /// Write finished jobs as they come, batching whatever has arrived; retry a failed write until it succeeds.
    /// A write that keeps failing for longer than a lease stops renewing its jobs' leases (the rescue hands them
    /// to whichever worker can run them) but is still retried: its results are never dropped, and the delivery
    /// row's `dispatch_seq` makes whichever of the two writes comes second a no-op.
    /// A written flush wakes the claimer when its last claim left due jobs it could not take (`due_left`: lanes
    /// full, which the finished jobs freed room in, or jobs another worker was claiming), or when the flush itself
    /// left work: jobs it queued, which the claimer's sleep (until the next job due) does not know of yet, or jobs
    /// that failed and are due again.
    /// Otherwise nothing is due that the room could serve, and waking would cost an empty claim and a look at the
    /// queue per flush (at a steady 200 events/s, one of each per delivery); new jobs from ingest wake the claimer
    /// by their own notification.
    async fn write_finished(
        self,
        mut from_jobs: tokio::sync::mpsc::Receiver<ToWrite>,
        wake: Arc<Notify>,
        due_left: Arc<AtomicBool>,
    ) {
        let mut pending: Vec<Finished> = Vec::new();
        let mut slots: Vec<OwnedSemaphorePermit> = Vec::new();
        let mut backoff = Backoff::default();
        let mut failing_since: Option<Instant> = None;
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
            // A panic while writing is a failed write: retried, and its jobs left to the rescue after a lease.
            let written = AssertUnwindSafe(self.flush(&pending))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(anyhow::anyhow!("flush panicked: {}", panic_message(&panic)))
                });
            match written {
                Ok(left_work) => {
                    pending.clear();
                    // Written and acknowledged: these jobs' slots (and their lanes' room) may take new work.
                    slots.clear();
                    if left_work || due_left.load(Ordering::Relaxed) {
                        wake.notify_one();
                    }
                    backoff.reset();
                    failing_since = None;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), pending = pending.len(), "cannot write finished jobs yet");
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.lease.lease {
                        self.held
                            .release(pending.iter().map(|f| f.task_id.to_string()));
                    }
                    let _ = backoff.wait(&never).await;
                }
            }
        }
    }

    /// Keep this worker's `apalis.workers` row current every heartbeat interval.
    async fn heartbeat(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.apalis.heartbeat_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = queue::heartbeat(&self.pool, &self.context).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }

    /// Every [`queue::parked::PROMOTE_EVERY`], put the parked jobs due soon into their lanes. Its own loop, so a long
    /// vacuum in the sweep never makes a retry late.
    async fn promote_parked(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(queue::parked::PROMOTE_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            match queue::parked::promote(&self.pool).await {
                Ok(0) => {}
                Ok(promoted) => tracing::debug!(promoted, "promoted parked jobs due soon"),
                Err(e) => tracing::warn!(error = %e, "promoting parked jobs failed"),
            }
        }
    }

    /// Every `every`, delete acknowledged jobs older than `retention`, vacuum the tables with many dead rows and
    /// analyze those that grew if the server will not (`queue::vacuum`), and refresh the queue's statistics if jobs
    /// went, no vacuum did, and enough of the queue changed since they were last taken.
    async fn sweep(self, every: Duration, retention: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let deleted = queue::sweep_finished(&self.pool, retention)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "sweeping finished jobs failed");
                    0
                });
            let started = Instant::now();
            let vacuumed = queue::vacuum::vacuum_churned(&self.pool, self.vacuum)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "vacuuming churned tables failed");
                    Vec::new()
                });
            if !vacuumed.is_empty() {
                tracing::debug!(deleted, tables = ?vacuumed, took = ?started.elapsed(), "swept and vacuumed");
            }
            match queue::vacuum::analyze_grown(&self.pool, self.vacuum).await {
                Ok(analyzed) if !analyzed.is_empty() => {
                    tracing::debug!(tables = ?analyzed, "analyzed tables that grew");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "analyzing grown tables failed"),
            }
            // Statistics only move when rows went (an idle queue costs no query), and VACUUM (ANALYZE) did it.
            if deleted > 0
                && !vacuumed.iter().any(|t| t == "apalis.jobs")
                && let Err(e) =
                    queue::vacuum::analyze_if_changed(&self.pool, self.vacuum.dead_rows).await
            {
                tracing::warn!(error = %e, "analyzing the queue failed");
            }
        }
    }
}

/// Resolves once `n` permits are free (without taking them).
async fn wait_for_permits(slots: &Semaphore, n: usize) {
    if let Ok(permits) = slots.acquire_many(n as u32).await {
        drop(permits);
    }
}

/// Wake the worker when new jobs due now are announced (by the insert trigger, or after an ingest commit); retries
/// scheduled later are found by polling.
async fn listen_for_new_jobs(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
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
        if listener.listen(queue::announce::CHANNEL).await.is_err() {
            let _ = backoff.wait(&shutdown).await;
            continue;
        }
        backoff.reset();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                notification = listener.recv() => match notification {
                    Ok(n) if n.payload().contains(crate::job::QUEUE) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    }
}
