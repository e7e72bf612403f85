//! The bcrypt gate: at most `concurrency` hashes at once (the cores), at most `queue` more checks admitted and
//! waiting, and no check waiting longer than `wait` in all (for a place, then for a turn). Whatever does not fit is
//! refused with [`Overloaded`] (the API answers 503 + `Retry-After`), so a flood of unknown keys costs a bounded
//! amount of CPU. A refused check is refused when its wait runs out, not at once: a client that sends again as soon
//! as it is answered (a flood of N connections) is held to N requests per `wait`, instead of spinning the HTTP
//! stack as fast as the cores allow. Hashes run on threads of lower OS priority (`nice`), so when the cores are
//! busy the rest of the process (cached validations, the worker) is scheduled first and bcrypt gets what is left.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};

/// Too many credential checks are running or waiting: deliberate load shedding, not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many credential checks in progress; retry shortly")]
pub struct Overloaded;

/// Limits of the gate.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    /// Hashes computed at once (0: the machine's available parallelism).
    pub concurrency: usize,
    /// Checks admitted beyond those running, waiting for a turn.
    pub queue: usize,
    /// Longest wait of a check, for a place and then a turn, before it is refused.
    pub wait: Duration,
    /// Nice value of hashing threads (0: the process's own priority; Linux applies it per thread).
    pub nice: i32,
}

/// Bounds bcrypt work. Cheap to clone.
#[derive(Clone)]
pub struct HashGate {
    /// One permit per hash running on its thread.
    running: Arc<Semaphore>,
    /// One permit per admitted check (running or waiting), taken before any database work.
    admitted: Arc<Semaphore>,
    concurrency: usize,
    wait: Duration,
    nice: i32,
}

/// An admitted check: holds its place until its hash has run (or it is dropped).
pub struct Ticket {
    gate: HashGate,
    place: OwnedSemaphorePermit,
    deadline: Instant,
}

impl HashGate {
    /// A gate with these limits.
    pub fn new(limits: GateLimits) -> Self {
        let concurrency = if limits.concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            limits.concurrency
        };
        Self {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + limits.queue)),
            concurrency,
            wait: limits.wait,
            nice: limits.nice,
        }
    }

    /// Hashes allowed at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A place in line, or `Overloaded` when none frees up within the wait. Take it before looking anything up,
    /// so the checks beyond the queue cost neither a database connection nor a hash.
    pub async fn admit(&self) -> Result<Ticket, Overloaded> {
        let deadline = Instant::now() + self.wait;
        let place = timeout_at(deadline, Arc::clone(&self.admitted).acquire_owned())
            .await
            .map_err(|_| Overloaded)?
            .map_err(|_| Overloaded)?;
        Ok(Ticket {
            gate: self.clone(),
            place,
            deadline,
        })
    }
}

impl Ticket {
    /// Run `work` (bcrypt) on a thread of its own at the gate's nice value once a turn is free, or `Overloaded` if
    /// none frees up before the check's wait (counted from admission) runs out. The permits move into that thread:
    /// a client that hangs up cannot free its turn while its hash still runs. (A thread per hash costs tens of microseconds next to a hash's
    /// tens of milliseconds, and leaves tokio's blocking pool at normal priority for everything else.)
    pub async fn run<T, F>(self, work: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let turn = timeout_at(
            self.deadline,
            Arc::clone(&self.gate.running).acquire_owned(),
        )
        .await
        .map_err(|_| Overloaded)?
        .map_err(|_| Overloaded)?;
        let (place, nice) = (self.place, self.gate.nice);
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("bcrypt".into())
            .spawn(move || {
                lower_priority(nice);
                let _ = done.send(work());
                drop((turn, place));
            })
            .map_err(|_| Overloaded)?;
        result.await.map_err(|_| Overloaded)
    }
}

/// Give the calling thread a lower scheduling priority. Best effort: a refusal leaves it at normal priority.
fn lower_priority(nice: i32) {
    if nice > 0 {
        // On Linux the nice value is per thread, and `None` means the calling one.
        let _ = rustix::process::setpriority_process(None, nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(concurrency: usize, queue: usize, wait_ms: u64) -> HashGate {
        HashGate::new(GateLimits {
            concurrency,
            queue,
            wait: Duration::from_millis(wait_ms),
            nice: 10,
        })
    }

    #[tokio::test]
    async fn admission_is_refused_once_running_and_waiting_places_stay_taken_for_the_wait() {
        let g = gate(1, 1, 10);
        let first = g.admit().await;
        let second = g.admit().await;
        assert!(first.is_ok() && second.is_ok());
        assert!(g.admit().await.is_err());
        drop(first);
        assert!(g.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_check_that_cannot_get_a_turn_within_the_wait_is_refused() {
        let g = gate(1, 1, 20);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let busy = g.admit().await.expect("admitted");
        let running = tokio::spawn(busy.run(move || {
            let _ = started.send(());
            let _ = hold.recv();
        }));
        has_started.await.expect("the first check runs");
        // The first check holds the only turn until released; the second must give up after 20 ms.
        let waiting = g.admit().await.expect("a place in the queue");
        assert!(waiting.run(|| ()).await.is_err());
        let _ = release.send(());
        assert!(running.await.expect("joined").is_ok());
        assert!(g.admit().await.expect("free again").run(|| 7).await == Ok(7));
    }

    #[tokio::test]
    async fn hashing_runs_at_the_configured_lower_priority() {
        let g = gate(1, 0, 1000);
        let priority = g
            .admit()
            .await
            .expect("admitted")
            .run(|| rustix::process::getpriority_process(None).ok())
            .await
            .expect("ran");
        assert_eq!(priority, Some(10), "the hashing thread runs at nice 10");
        let own = rustix::process::getpriority_process(None).ok();
        assert_ne!(own, Some(10), "the caller's own thread keeps its priority");
    }

    #[test]
    fn zero_concurrency_means_the_available_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(gate(0, 0, 1).concurrency(), cores);
    }
}
