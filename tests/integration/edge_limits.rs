//! What one client can cost the API: body sizes counted while the body is read (per route, chunked or h2c),
//! and connections closed when headers or bodies arrive slower than the documented bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use integration_service::startup::Roles;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestApp, TestDb, event, test_config};

const MIB: usize = 1 << 20;
/// How long a test waits for the server to answer or hang up (the bounds under test are 1 s).
const PATIENCE: Duration = Duration::from_secs(20);

/// Everything the server sends on `stream` until it closes the connection (a reset counts as closed).
async fn read_until_closed(mut reader: tokio::net::tcp::OwnedReadHalf) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {PATIENCE:?}"
    );
    String::from_utf8_lossy(&seen).into_owned()
}

/// Writes `head`, then `unit` every `every` (forever, or until the server hangs up); returns the bytes sent.
fn trickle(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    head: String,
    unit: Vec<u8>,
    every: Duration,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut sent = 0;
        if writer.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        loop {
            if writer.write_all(&unit).await.is_err() {
                return sent;
            }
            sent += unit.len();
            if !every.is_zero() {
                // The behaviour under test: a client that trickles its bytes at this pace.
                tokio::time::sleep(every).await;
            }
        }
    })
}

/// An app whose slow-client bounds are one second.
async fn impatient_app() -> TestApp {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.http.header_read_timeout_ms = 1000;
    config.http.body_read_timeout_ms = 1000;
    TestApp::spawn_with(db, config, Roles::API).await
}

/// Catches: an unauthenticated 100 MB body over HTTP/2 without TLS (no Content-Length) read whole into memory.
#[tokio::test]
async fn an_h2c_request_is_not_served_and_its_body_not_read() {
    let app = TestApp::spawn().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let body = futures::stream::iter(0..100).map(move |_| {
        counter.fetch_add(MIB, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b'a'; MIB])
    });
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let request = client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let answer = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("the server answered or hung up in time");
    if let Ok(response) = answer {
        assert_eq!(
            response.status(),
            413,
            "if served at all, the body is refused"
        );
    }
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(pulled <= 4 * MIB, "{pulled} bytes of the body were taken");
}

/// Catches: a body without Content-Length (chunked) escaping the size limit and being buffered whole.
#[tokio::test]
async fn a_chunked_body_is_refused_with_413_as_soon_as_it_crosses_the_limit() {
    let app = TestApp::spawn().await;
    let limit = app.app.config().http.max_body_bytes;
    let (reader, writer) = TcpStream::connect(app.addr)
        .await
        .expect("connect")
        .into_split();
    let head = "POST /oauth/token HTTP/1.1\r\nHost: edge\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000)).into_bytes();
    let sender = trickle(writer, head.into(), chunk, Duration::ZERO);
    let answer = read_until_closed(reader).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let sent = sender.await.expect("sender");
    // The kernel's socket buffers hold a few MB at most; the server stopped reading just past the limit.
    assert!(
        sent < 32 * MIB,
        "{sent} bytes sent before the server hung up (limit {limit})"
    );
}

/// Catches: one size limit for every route (1 MiB + 64 KiB), where JSON documents and forms get a small one and
/// only `POST /events` the documented 1 MiB.
#[tokio::test]
async fn each_route_has_its_own_body_limit() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(100 * 1024);
    let subscription =
        json!({"name": padding, "targetUrl": "http://127.0.0.1:9/", "events": ["*"]});
    let response = app
        .as_store(Method::POST, "/subscriptions", "store-l")
        .json(&subscription)
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 413);
    let within = event(
        "order.placed",
        "store-l",
        json!({"pad": "x".repeat(900 * 1024)}),
    );
    assert_eq!(
        app.post_event(&within).await.status(),
        202,
        "900 KiB is a valid event"
    );
    let over = event("order.placed", "store-l", json!({"pad": "x".repeat(MIB)}));
    assert_eq!(app.post_event(&over).await.status(), 413);
}

/// Catches: a client sending its headers a byte at a time keeping a connection (and a task) forever.
#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let app = impatient_app().await;
    let (reader, writer) = TcpStream::connect(app.addr)
        .await
        .expect("connect")
        .into_split();
    let head = "GET /health HTTP/1.1\r\nHost: edge\r\nX-Slow: ".to_owned();
    let sender = trickle(writer, head, b"a".to_vec(), Duration::from_millis(200));
    read_until_closed(reader).await;
    sender.abort();
}

/// Catches: a client sending its body a byte at a time keeping a connection (and a handler) forever.
#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_is_disconnected() {
    let app = impatient_app().await;
    let (reader, writer) = TcpStream::connect(app.addr)
        .await
        .expect("connect")
        .into_split();
    let head = "POST /oauth/token HTTP/1.1\r\nHost: edge\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 1000\r\n\r\n"
        .to_owned();
    let sender = trickle(writer, head, b"a".to_vec(), Duration::from_millis(200));
    let answer = read_until_closed(reader).await;
    sender.abort();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}
