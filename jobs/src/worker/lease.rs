//! Leases on claimed jobs. A claim sets `lock_at`, which starts the job's lease; the worker renews the leases of the
//! jobs it actually holds (claimed and not yet acknowledged, known in memory) with one statement every
//! `renew_every`; a rescue, run by every worker but by one at a time, re-queues jobs whose lease is older than
//! `lease`. So a job its worker forgot (the claim's reply was lost, the worker died, its result could not be written
//! for longer than a lease) runs again within `lease + rescue_every`, whether or not its worker still heartbeats.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::queue;

/// How long a claim lasts without renewal, and how often leases are renewed and expired ones rescued.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// A job whose lease was not renewed for this long is re-queued.
    pub lease: Duration,
    /// How often a worker renews the leases of the jobs it holds (well below `lease`).
    pub renew_every: Duration,
    /// How often a worker looks for expired leases.
    pub rescue_every: Duration,
}

impl LeaseSettings {
    /// The longest a forgotten claim waits before it is re-queued.
    pub fn bound(&self) -> Duration {
        self.lease + self.rescue_every
    }
}

/// The apalis job ids this worker holds: added once a claim's jobs are loaded, removed once their results are
/// acknowledged (or given up on). Only these leases are renewed.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<HashSet<String>>>);

impl Held {
    /// Start renewing `ids`.
    pub fn hold(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().extend(ids);
    }

    /// Stop renewing `ids`: they are acknowledged, or left to the rescue.
    pub fn release<S: AsRef<str>>(&self, ids: impl IntoIterator<Item = S>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(id.as_ref());
        }
    }

    /// The ids to renew now.
    pub fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Worker {
    /// Every `renew_every`, renew the leases of the jobs this worker holds, in one statement.
    pub(super) async fn renew_leases(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.lease.renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let ids = self.held.snapshot();
            if ids.is_empty() {
                continue;
            }
            if let Err(e) = queue::renew_leases(&self.pool, self.name(), &ids).await {
                tracing::warn!(error = %e, held = ids.len(), "cannot renew leases");
            }
        }
    }

    /// Every `rescue_every`, re-queue jobs whose lease expired, and wake the claimer when there were some.
    pub(super) async fn rescue_expired(
        self,
        wake: Arc<tokio::sync::Notify>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.lease.rescue_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match self.rescue_once().await {
                Ok(0) => {}
                Ok(rescued) => {
                    tracing::info!(rescued, "re-queued jobs whose lease expired");
                    wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "cannot rescue expired leases"),
            }
        }
    }

    /// Re-queue the jobs whose lease expired (if no other worker is doing it right now). Returns how many.
    pub async fn rescue_once(&self) -> Result<u64, sqlx::Error> {
        queue::rescue_expired(&self.pool, self.lease.lease).await
    }
}
