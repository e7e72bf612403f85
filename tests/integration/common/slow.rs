//! A receiver that answers every POST after a fixed delay (a slow store's endpoint, or, with a delay past the
//! service's timeout, one that never answers in time), counting the requests it got and the most it held at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, Route, handler};

#[derive(Default)]
struct Counts {
    received: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// One open request; closed when the handler ends or is dropped (the client hung up).
struct Open(Arc<Counts>);

impl Open {
    fn new(counts: &Arc<Counts>) -> Self {
        counts.received.fetch_add(1, Ordering::SeqCst);
        let now = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most_open.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(counts))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[handler]
async fn answer_late(state: Data<&(Arc<Counts>, Duration)>) -> StatusCode {
    let (counts, delay) = *state;
    let _open = Open::new(counts);
    tokio::time::sleep(*delay).await;
    StatusCode::OK
}

/// The receiver; dropping it stops the server.
pub struct SlowReceiver {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    server: tokio::task::JoinHandle<()>,
}

impl SlowReceiver {
    /// Answer 200 to every POST, `delay` after it arrived.
    pub async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind slow receiver");
        let addr = listener.local_addr().expect("addr");
        let counts = Arc::new(Counts::default());
        let app = Route::new()
            .at("/*path", poem::post(answer_late))
            .data((Arc::clone(&counts), delay));
        let server = tokio::spawn(async move {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            addr,
            counts,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Requests received so far.
    pub fn received(&self) -> usize {
        self.counts.received.load(Ordering::SeqCst)
    }

    /// The most requests it held open at once.
    pub fn most_open(&self) -> usize {
        self.counts.most_open.load(Ordering::SeqCst)
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
