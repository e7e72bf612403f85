//! A TCP proxy in front of the real Postgres that reads the wire protocol and can cut one connection at COMMIT:
//! a deterministic seam for "the commit's outcome is unknown to the client", with no hook in the service.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Where the connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// COMMIT reaches Postgres, which commits; its answer is dropped with the connection (committed, client errs).
    AfterCommit,
    /// The connection is dropped instead of sending COMMIT (Postgres rolls back, client errs).
    BeforeCommit,
}

struct Plan {
    /// Transactions that ran a statement containing this text are the ones whose COMMIT may be cut.
    marker: &'static str,
    /// The next such COMMIT is cut this way (once).
    armed: Mutex<Option<Cut>>,
    cuts: AtomicUsize,
    cut_done: Notify,
}

/// The proxy; `url()` gives the database URL to hand the service.
pub struct PgProxy {
    pub addr: SocketAddr,
    plan: Arc<Plan>,
}

impl PgProxy {
    /// Proxy to `upstream` (host:port of the real Postgres), ready to cut transactions that ran a statement
    /// containing `marker`.
    pub async fn start(upstream: String, marker: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let plan = Arc::new(Plan {
            marker,
            armed: Mutex::new(None),
            cuts: AtomicUsize::new(0),
            cut_done: Notify::new(),
        });
        let shared = plan.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(proxy(client, server, shared.clone()));
            }
        });
        Self { addr, plan }
    }

    /// `database_url` with its host and port replaced by the proxy's (TLS off: the proxy reads the protocol).
    pub fn url(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("database url");
        url.set_host(Some(&self.addr.ip().to_string()))
            .expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }

    /// Cut the next COMMIT of a transaction that ran a statement containing the marker, once.
    pub fn cut_next_commit(&self, cut: Cut) {
        *self.plan.armed.lock().expect("lock") = Some(cut);
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.plan.cuts.load(Ordering::SeqCst)
    }

    /// Wait until a cut has happened.
    pub async fn wait_for_cut(&self) {
        loop {
            let notified = self.plan.cut_done.notified();
            if self.cuts() > 0 {
                return;
            }
            notified.await;
        }
    }
}

async fn proxy(client: TcpStream, server: TcpStream, plan: Arc<Plan>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Set when COMMIT was forwarded and its answer must be swallowed.
    let swallow = Arc::new(Notify::new());
    let cut_answer = tokio::spawn(server_to_client(
        server_read,
        client_write,
        swallow.clone(),
        plan.clone(),
    ));
    client_to_server(client_read, server_write, swallow, plan).await;
    let _ = cut_answer.await;
}

/// Forward the server's bytes, until told to swallow the answer to COMMIT: then read it and drop the connection.
async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    swallow: Arc<Notify>,
    plan: Arc<Plan>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            biased;
            _ = swallow.notified() => {
                // After COMMIT: its answer (CommandComplete, ReadyForQuery), proof the server committed.
                // Before COMMIT: the server closing the connection it saw end.
                let _ = from.read(&mut buf).await;
                plan.cuts.fetch_add(1, Ordering::SeqCst);
                plan.cut_done.notify_waiters();
                let _ = to.shutdown().await;
                return;
            }
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}

/// Forward the client's messages one by one, tracking which prepared statements and transactions ran `marker`.
async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    swallow: Arc<Notify>,
    plan: Arc<Plan>,
) {
    // The startup message has no type byte.
    let Some(startup) = read_untyped(&mut from).await else {
        return;
    };
    if to.write_all(&startup).await.is_err() {
        return;
    }
    let mut marked_statements: HashSet<Vec<u8>> = HashSet::new();
    let mut in_marked_tx = false;
    while let Some((kind, body)) = read_typed(&mut from).await {
        let marker = plan.marker.as_bytes();
        match kind {
            b'P' if contains(&body, marker) => {
                in_marked_tx = true;
                marked_statements.insert(cstr(&body, 0).to_vec());
            }
            b'B' => {
                let portal = cstr(&body, 0);
                in_marked_tx |= marked_statements.contains(cstr(&body, portal.len() + 1));
            }
            b'Q' if contains(&body, marker) => in_marked_tx = true,
            _ => {}
        }
        let simple = if kind == b'Q' { cstr(&body, 0) } else { b"" };
        let commit = simple.eq_ignore_ascii_case(b"COMMIT");
        if simple.eq_ignore_ascii_case(b"BEGIN") || simple.eq_ignore_ascii_case(b"ROLLBACK") {
            in_marked_tx = false;
        }
        if commit && in_marked_tx {
            let cut = plan.armed.lock().expect("lock").take();
            match cut {
                Some(Cut::BeforeCommit) => {
                    // Returning drops the server's write half: Postgres sees the client gone and rolls back;
                    // `server_to_client` then counts the cut and closes the client's socket.
                    swallow.notify_one();
                    return;
                }
                Some(Cut::AfterCommit) => swallow.notify_one(),
                None => {}
            }
        }
        if commit {
            in_marked_tx = false;
        }
        let mut message = Vec::with_capacity(body.len() + 5);
        message.push(kind);
        message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        message.extend_from_slice(&body);
        if to.write_all(&message).await.is_err() {
            return;
        }
    }
}

async fn read_untyped(from: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let len = from.read_i32().await.ok()?;
    let mut message = len.to_be_bytes().to_vec();
    message.resize(usize::try_from(len).ok()?, 0);
    from.read_exact(&mut message[4..]).await.ok()?;
    Some(message)
}

async fn read_typed(from: &mut OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    let kind = from.read_u8().await.ok()?;
    let len = usize::try_from(from.read_i32().await.ok()?).ok()?;
    let mut body = vec![0u8; len.checked_sub(4)?];
    from.read_exact(&mut body).await.ok()?;
    Some((kind, body))
}

/// The NUL-terminated string starting at `at`.
fn cstr(body: &[u8], at: usize) -> &[u8] {
    let rest = body.get(at..).unwrap_or_default();
    &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
