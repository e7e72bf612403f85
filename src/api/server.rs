//! The API's HTTP server: hyper's HTTP/1.1 connection driver around the poem application.
//!
//! Why not `poem::Server`: it always speaks HTTP/2 without TLS (h2c) next to HTTP/1.1, and exposes no
//! header-read timeout, so a client trickling one byte a second kept a connection (and its task) forever.
//! Nothing here needs h2c (TLS and HTTP/2 end at the gateway or ingress in front of the service), so this
//! server speaks HTTP/1.1 only: an h2c preface is refused and the connection closed before any body is read.
//! Request bodies are limited while they are read by `api::edge`, whatever the protocol.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Connection-level limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A request's header block must arrive whole within this time of the server starting to wait for it
    /// (a new connection, or the end of the previous response on a kept-alive one); else the connection closes.
    pub header_read_timeout: Duration,
    /// On shutdown, connections still busy after this long are closed.
    pub shutdown_grace: Duration,
}

/// Serve `app` on `listener` until `shutdown`, then let in-flight requests finish (up to the grace period).
pub async fn serve<E>(
    listener: TcpListener,
    app: E,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let app = Arc::new(app.map_to_response().boxed());
    let local = LocalAddr(listener.local_addr()?.into());
    let graceful = GracefulShutdown::new();
    let force_close = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if crate::supervisor::listener_is_broken(&e) => {
                    tracing::error!(error = %e, "the API listener failed");
                    return Err(e);
                }
                Err(e) => {
                    // Out of file descriptors and the like: the next accept may succeed; do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small answers: do not wait for Nagle to coalesce them.
        let _ = stream.set_nodelay(true);
        let (app, local) = (app.clone(), local.clone());
        let remote = RemoteAddr(peer.into());
        let service = hyper::service::service_fn(move |req| {
            let (app, local, remote) = (app.clone(), local.clone(), remote.clone());
            async move {
                let req = poem::Request::from((req, local, remote, Scheme::HTTP));
                Ok::<_, Infallible>(hyper::Response::from(app.get_response(req).await))
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let force_close = force_close.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(error = %e, remote = %peer, "connection ended with an error");
                },
                () = force_close.cancelled() => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("closing connections still busy after the shutdown grace period");
            force_close.cancel();
        }
    }
    Ok(())
}
