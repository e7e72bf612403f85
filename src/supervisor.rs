//! The roles of one process under supervision: a role that stops on its own (an error, a panic, or returning
//! before shutdown) stops every other role, and the process exits non-zero naming it, instead of living on with
//! a part missing (an API that no longer accepts connections while `/health` elsewhere says all is well).

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the roles' tasks; the first one to die cancels `stop` and is reported by [`Supervisor::finish`].
pub struct Supervisor {
    tracker: TaskTracker,
    stop: CancellationToken,
    deaths: Arc<Mutex<Vec<String>>>,
}

impl Supervisor {
    /// Roles stop when `shutdown` is cancelled, or when one of them dies.
    pub fn new(shutdown: &CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop: shutdown.child_token(),
            deaths: Arc::default(),
        }
    }

    /// The token every role watches.
    pub fn stop(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Run `task` as part of `role`. Ending before shutdown, with an error, or by panicking is a death.
    pub fn spawn<F>(&self, role: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, deaths) = (self.stop.clone(), self.deaths.clone());
        self.tracker.spawn(async move {
            let why = match tokio::spawn(task).await {
                Ok(Ok(())) if stop.is_cancelled() => return,
                Ok(Ok(())) => "it ended before shutdown was asked for".to_owned(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => format!("it panicked: {e}"),
            };
            tracing::error!(role, %why, "a role stopped; stopping the others");
            deaths
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("the {role} role stopped: {why}"));
            stop.cancel();
        });
    }

    /// Wait for shutdown (asked for, or caused by a death), drain every role, and say which roles died.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.tracker.close();
        self.stop.cancelled().await;
        tracing::info!("shutting down: draining in-flight work");
        self.tracker.wait().await;
        let deaths = std::mem::take(&mut *self.deaths.lock().unwrap_or_else(|p| p.into_inner()));
        match deaths.is_empty() {
            true => Ok(()),
            false => Err(anyhow::anyhow!(deaths.join("; "))),
        }
    }
}

/// Whether an accept error means the listening socket is broken for good (`EBADF`, `EINVAL`, `ENOTSOCK`,
/// `EFAULT`): the API would stay deaf while the process runs on, so the server returns it and the role dies.
/// Per-connection errors and resource exhaustion (`EMFILE`…) are transient: the server logs and retries them.
pub fn listener_is_broken(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT)
    )
}

/// Run `step` every `period` (the first at once) until `shutdown`; a late tick waits a whole period from then.
pub async fn every<F, Fut>(period: std::time::Duration, shutdown: CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        step().await;
    }
}
