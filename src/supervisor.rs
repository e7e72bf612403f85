//! The roles of one process under supervision: a role that stops on its own (an error, a panic, or returning
//! before shutdown) stops every other role, and the process exits non-zero naming it, instead of living on with
//! a part missing (an API that no longer accepts connections while `/health` elsewhere says all is well).

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;
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

/// A TCP acceptor that reports a broken listener instead of retrying it forever: poem ignores accept errors, so a
/// listening socket that fails for good (`EBADF`, `EINVAL`, `ENOTSOCK`) would leave the API deaf while the process
/// runs on. Per-connection errors and resource exhaustion (`EMFILE`…) stay transient: logged and retried after a
/// short pause, so a burst of them does not spin a core.
pub struct FailFastAcceptor {
    inner: TcpAcceptor,
    broken: CancellationToken,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl FailFastAcceptor {
    /// Wrap `listener`; `broken` is cancelled when it fails for good.
    pub fn new(listener: tokio::net::TcpListener, broken: CancellationToken) -> io::Result<Self> {
        Ok(Self {
            inner: TcpAcceptor::from_tokio(listener)?,
            broken,
            error: Arc::default(),
        })
    }

    /// The error that broke the listener, once `broken` is cancelled.
    pub fn error(&self) -> Arc<Mutex<Option<io::Error>>> {
        self.error.clone()
    }
}

fn is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT)
    )
}

impl Acceptor for FailFastAcceptor {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return Ok(accepted),
                Err(e) if is_fatal(&e) => {
                    tracing::error!(error = %e, "the API listener failed");
                    *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    self.broken.cancel();
                    // The server shuts down on `broken`; never hand poem another error to spin on.
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
