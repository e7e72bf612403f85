//! The hand-off: this process's ingest gives the jobs it queues straight to this process's running worker, which
//! runs them from memory instead of waiting for a NOTIFY and claiming them back from Postgres.
//!
//! Before its transaction, the ingest reserves free slots of the worker ([`Handoff::reserve`]); the insert writes
//! the jobs the worker may take already claimed by it ([`crate::queue::push`] has the rules: the claim's lane lock,
//! room and order); after the commit, [`Reservation::start`] runs them in the reserved slots, from the deliveries
//! the fan-out statement returned (nothing is loaded back), and the worker's writer acknowledges them as it does
//! claimed jobs. Slots not used go back at once. A rolled-back transaction drops its reservation. A worker that is
//! stopping takes nothing: it disconnects before it drains.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::runner::ToWrite;
use super::{Known, Worker};
use crate::queue::Taker;
use crate::queue::claim::ClaimedJob;

/// Where a process's ingest finds its running worker, if any. Cheap to clone; every clone sees the same worker.
#[derive(Clone, Default)]
pub struct Handoff(Arc<Mutex<Option<Link>>>);

/// A running worker's slots and writer.
#[derive(Clone)]
pub(super) struct Link {
    pub(super) worker: Worker,
    pub(super) slots: Arc<Semaphore>,
    pub(super) to_writer: mpsc::Sender<ToWrite>,
}

/// Slots of the worker reserved for one ingest transaction's jobs.
pub struct Reservation {
    link: Link,
    slots: Vec<OwnedSemaphorePermit>,
}

impl Handoff {
    /// Whether a worker runs here and takes jobs now.
    pub fn connected(&self) -> bool {
        self.0.lock().is_ok_and(|link| link.is_some())
    }

    /// Reserve up to `most` free slots of the running worker: `None` when no worker runs here or none is free.
    pub fn reserve(&self, most: usize) -> Option<Reservation> {
        let link = self.0.lock().ok()?.clone()?;
        let mut slots = Vec::new();
        while slots.len() < most {
            match link.slots.clone().try_acquire_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        (!slots.is_empty()).then_some(Reservation { link, slots })
    }

    /// The running worker takes jobs from now on (the first to connect, if several run in one process).
    pub(super) fn connect(&self, link: Link) {
        if let Ok(mut current) = self.0.lock()
            && current.is_none()
        {
            *current = Some(link);
        }
    }

    /// `worker` takes no more jobs (it is stopping).
    pub(super) fn disconnect(&self, worker: &str) {
        if let Ok(mut current) = self.0.lock()
            && current.as_ref().is_some_and(|l| l.worker.name() == worker)
        {
            *current = None;
        }
    }
}

impl Reservation {
    /// Who takes the jobs, and how many at most, for [`crate::queue::push::push_taking`].
    pub fn taker(&self) -> Taker<'_> {
        Taker {
            worker: self.link.worker.name(),
            most: self.slots.len(),
            limits: self.link.worker.lanes,
        }
    }

    /// After the commit: run the jobs taken, each in a reserved slot, with their deliveries from `known` (those it
    /// lacks are loaded); the other slots go back now. A job that cannot be loaded is left to the lease rescue, as a
    /// claimed one is.
    pub fn start(self, taken: Vec<ClaimedJob>, known: Known) {
        let Self { link, mut slots } = self;
        slots.truncate(taken.len());
        if taken.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let claimed = match link.worker.take(taken, known).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot load jobs handed off by ingest; their leases will expire and they run again");
                    return;
                }
            };
            for (c, slot) in claimed.into_iter().zip(slots) {
                let (worker, to_writer) = (link.worker.clone(), link.to_writer.clone());
                tokio::spawn(async move {
                    let _ = to_writer.send((worker.execute(c).await, slot)).await;
                });
            }
        });
    }
}
