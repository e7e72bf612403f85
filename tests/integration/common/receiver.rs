//! A real HTTP receiver: records every request and answers with a programmable status sequence.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler};
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

#[derive(Clone)]
struct Shared {
    statuses: Arc<Mutex<VecDeque<u16>>>,
    sender: mpsc::UnboundedSender<Received>,
}

/// The receiver; `url()` is its endpoint.
pub struct Receiver {
    pub addr: SocketAddr,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    received: mpsc::UnboundedReceiver<Received>,
    shared: Shared,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

#[handler]
async fn record(req: &Request, body: Vec<u8>, shared: Data<&Shared>) -> StatusCode {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let status = shared
        .statuses
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
        .unwrap_or(200);
    let _ = shared.sender.send(Received {
        path: req.uri().path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

/// Serve `listener` until the returned sender fires; then close every connection at once.
fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Route::new().at("/*path", poem::post(record)).data(shared);
    let server = tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    let _ = stopped.await;
                },
                Some(Duration::ZERO),
            )
            .await;
    });
    (stop, server)
}

impl Receiver {
    /// Start on an ephemeral loopback port; answers 200 once `statuses` is used up.
    pub async fn start(statuses: &[u16]) -> Self {
        let statuses = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let (sender, received) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            statuses: statuses.clone(),
            sender,
        };
        let server = Some(serve(listener, shared.clone()));
        Self {
            addr,
            statuses,
            received,
            shared,
            server,
        }
    }

    /// Stop serving: the port refuses connections and open ones are closed.
    pub async fn stop(&mut self) {
        if let Some((stop, server)) = self.server.take() {
            let _ = stop.send(());
            let _ = server.await;
        }
    }

    /// Serve again on the same port, recording into the same channel.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the receiver's port again");
        self.server = Some(serve(listener, self.shared.clone()));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Queue more statuses to answer with.
    pub fn answer(&self, statuses: &[u16]) {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(statuses);
    }

    /// The next request, failing the test if none comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Received {
        tokio::time::timeout(within, self.received.recv())
            .await
            .expect("the receiver got no request in time")
            .expect("receiver channel open")
    }

    /// The next request if one comes before `deadline` (`None` once it passed).
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Received> {
        tokio::time::timeout_at(deadline, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// Whatever arrived so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.received.try_recv() {
            out.push(r);
        }
        out
    }

    /// Assert nothing else arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(quiet, self.received.recv()).await {
            panic!(
                "unexpected request: {} {:?}",
                r.path,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}
