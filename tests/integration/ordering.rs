//! Ordered delivery: an ordered subscription's deliveries with the same ordering key reach the receiver one at a
//! time in ingest order, across worker processes; a failing head holds back only its own key; other subscriptions
//! are unaffected; turning ordering off sends what waited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, handler};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::common::client::JsonAnswer;
use crate::common::process::ServiceProcess;
use crate::common::receiver::Receiver;
use crate::common::{TestApp, event};

/// One request the receiver answered: its key, its place in the key's order, and whether it was accepted.
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    pub key: String,
    pub seq: u64,
    pub accepted: bool,
}

/// What the receiver shares with its handler.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Requests of each key being answered right now (an ordered key never has two).
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    /// Keys that ever had two requests in flight at once.
    pub overlapped: Arc<Mutex<Vec<String>>>,
    /// While set, the first event (`seq` 0) of `held_key` is refused with 500.
    hold: Arc<AtomicBool>,
    held_key: String,
    sender: mpsc::UnboundedSender<Arrival>,
}

/// Answers after a short pause (so that overlapping requests of a key would be seen), refusing the held head.
#[handler]
async fn answer(Json(body): Json<Value>, shared: Data<&Shared>) -> StatusCode {
    let key = body["data"]["orderId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let seq = body["data"]["seq"].as_u64().unwrap_or_default();
    {
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            shared
                .overlapped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(key.clone());
        }
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let refused = key == shared.held_key && seq == 0 && shared.hold.load(AtomicOrdering::SeqCst);
    *shared
        .in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default() -= 1;
    let _ = shared.sender.send(Arrival {
        key,
        seq,
        accepted: !refused,
    });
    if refused {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Start the ordered receiver on a loopback port; returns its URL, its shared state and the arrivals.
pub(crate) async fn ordered_receiver(
    held_key: &str,
) -> (String, Shared, mpsc::UnboundedReceiver<Arrival>) {
    let (sender, arrivals) = mpsc::unbounded_channel();
    let shared = Shared {
        in_flight: Arc::default(),
        overlapped: Arc::default(),
        hold: Arc::new(AtomicBool::new(true)),
        held_key: held_key.to_owned(),
        sender,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Route::new()
        .at("/hook", poem::post(answer))
        .data(shared.clone());
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    (format!("http://{addr}/hook"), shared, arrivals)
}

/// Assert that each key was accepted in exactly the expected order of `seq`, and that no key ever had two requests
/// in flight.
pub(crate) fn assert_in_order(log: &[Arrival], shared: &Shared, keys: Vec<(String, Vec<u64>)>) {
    for (key, expected) in keys {
        let accepted: Vec<u64> = log
            .iter()
            .filter(|a| a.key == key && a.accepted)
            .map(|a| a.seq)
            .collect();
        assert_eq!(accepted, expected, "{key} out of order");
    }
    let overlapped = shared
        .overlapped
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        overlapped.is_empty(),
        "two deliveries of a key at once: {overlapped:?}"
    );
}

/// Create a subscription of `store` with `body`'s settings (name, events and target added); returns its id.
async fn create(app: &TestApp, store: &str, target: &str, settings: Value) -> (Uuid, Value) {
    let mut body = json!({"name": "ordered", "targetUrl": target, "events": ["order.*"]});
    if let (Some(body), Some(settings)) = (body.as_object_mut(), settings.as_object()) {
        body.extend(settings.clone());
    }
    let created: Value = app
        .as_store(Method::POST, "/subscriptions", store)
        .json(&body)
        .json_answer()
        .await;
    let id = serde_json::from_value(created["subscription"]["subscriptionId"].clone()).expect("id");
    (id, created["subscription"].clone())
}

const KEYS: usize = 16;
const PER_KEY: u64 = 6;

/// Catches: deliveries of a key sent side by side or out of ingest order (by two worker processes, or by one),
/// a failing head holding back other keys or another subscription, and a held key skipping its head.
#[tokio::test]
async fn two_worker_processes_deliver_each_key_in_order_and_a_failing_head_holds_back_only_its_key()
{
    let (app, env) = TestApp::api_only(&[("SS3_WORKER__TIME_SCALE", "0.001")]).await;
    let (target, shared, mut arrivals) = ordered_receiver("o0").await;
    let (ordered, shown) = create(
        &app,
        "store-o",
        &target,
        json!({"ordering": {"key": "$.data.orderId"}}),
    )
    .await;
    assert_eq!(
        shown["ordering"]["key"], "$.\"data\".\"orderId\"",
        "{shown}"
    );
    let mut unordered_to = Receiver::start(&[]).await;
    app.subscribe("store-o", &unordered_to.url(), &["order.*"])
        .await;
    // Interleaved, as a shop's orders would be: seq 0 of every key, then seq 1, ...
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let e = event(
                "order.updated",
                "store-o",
                json!({"orderId": format!("o{k}"), "seq": seq}),
            );
            assert_eq!(app.post_event(&e).await.status(), 202);
        }
    }
    let _w1 = ServiceProcess::spawn("worker", &env, "ordered-worker-1");
    let _w2 = ServiceProcess::spawn("worker", &env, "ordered-worker-2");

    // Every key but the held one is delivered whole while o0's head keeps failing.
    let others = (KEYS - 1) * usize::try_from(PER_KEY).unwrap_or_default();
    let mut log: Vec<Arrival> = Vec::new();
    while log.iter().filter(|a| a.key != "o0" && a.accepted).count() < others {
        let a = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
            .await
            .expect("deliveries in time")
            .expect("receiver open");
        log.push(a);
    }
    assert!(
        log.iter()
            .filter(|a| a.key == "o0")
            .all(|a| a.seq == 0 && !a.accepted),
        "o0 went past its failing head: {log:?}"
    );
    for _ in 0..KEYS * usize::try_from(PER_KEY).unwrap_or_default() {
        unordered_to.next(Duration::from_secs(30)).await;
    }

    // Released: o0's head is delivered at its next retry (or, on a slow machine, was dead-lettered after its fifth
    // failure), and the rest of o0 follows in order.
    shared.hold.store(false, AtomicOrdering::SeqCst);
    while log
        .iter()
        .filter(|a| a.key == "o0" && a.accepted && a.seq > 0)
        .count()
        < 5
    {
        let a = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
            .await
            .expect("o0 in time")
            .expect("receiver open");
        log.push(a);
    }
    let head_delivered = log
        .iter()
        .any(|a| a.key == "o0" && a.seq == 0 && a.accepted);
    let keys = (0..KEYS)
        .map(|k| {
            let first = if k == 0 && !head_delivered { 1 } else { 0 };
            (format!("o{k}"), (first..PER_KEY).collect())
        })
        .collect();
    assert_in_order(&log, &shared, keys);
    // The workers record the last attempts (and end the lines) just after the receiver answered them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let lines = app.count("SELECT count(*) FROM webhook_order_heads").await;
        let open = app
            .count("SELECT count(*) FROM webhook_deliveries WHERE status NOT IN ('DELIVERED', 'DEAD_LETTERED')")
            .await;
        if lines == 0 && open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{lines} lines and {open} deliveries still open"
        );
        crate::common::wait::pause().await;
    }
    let page: Value = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{ordered}/deliveries?limit=200"),
            "store-o",
        )
        .json_answer()
        .await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        KEYS * usize::try_from(PER_KEY).unwrap_or_default()
    );
}

/// Catches: a whole-subscription order that lets a second delivery out while the first fails, waiting deliveries
/// stranded when ordering is turned off, and a key that is not a path accepted.
#[tokio::test]
async fn turning_ordering_off_sends_what_waited_and_a_bad_key_is_refused() {
    let (app, env) = TestApp::api_only(&[("SS3_WORKER__TIME_SCALE", "0.001")]).await;
    for bad in [json!("$.data.("), json!("not a path"), json!(7)] {
        let body = json!({"name": "x", "targetUrl": "http://127.0.0.1:9/", "events": ["*"], "ordering": {"key": bad}});
        let (status, doc) = app.post_refused("/subscriptions", "store-o", &body).await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (422, Some("invalid_ordering_key")),
            "{bad}: {doc}"
        );
    }
    let (target, shared, mut arrivals) = ordered_receiver("o0").await;
    let (id, shown) = create(&app, "store-o", &target, json!({"ordering": {}})).await;
    assert_eq!(
        shown["ordering"],
        json!({"key": null}),
        "whole-subscription ordering has no key: {shown}"
    );
    // Five events of one order: the whole subscription is one line, so only o0's seq 0 is tried, again and again.
    for seq in 0..5 {
        let e = event(
            "order.updated",
            "store-o",
            json!({"orderId": "o0", "seq": seq}),
        );
        assert_eq!(app.post_event(&e).await.status(), 202);
    }
    let _w = ServiceProcess::spawn("worker", &env, "ordered-worker-off");
    let mut log = Vec::new();
    while log.iter().filter(|a: &&Arrival| !a.accepted).count() < 2 {
        let a = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await
            .expect("tried")
            .expect("open");
        log.push(a);
    }
    assert!(log.iter().all(|a| a.seq == 0), "{log:?}");

    let changed: Value = app
        .as_store(Method::PATCH, &format!("/subscriptions/{id}"), "store-o")
        .json(&json!({"ordering": null}))
        .json_answer()
        .await;
    assert!(
        changed.get("ordering").is_none_or(Value::is_null),
        "{changed}"
    );
    // The four that waited go at once, without waiting for the failing head.
    let mut released = Vec::new();
    while released.len() < 4 {
        let a = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await
            .expect("released")
            .expect("open");
        if a.seq > 0 {
            released.push(a.seq);
        }
    }
    released.sort_unstable();
    assert_eq!(released, vec![1, 2, 3, 4]);
    assert!(
        shared.hold.load(AtomicOrdering::SeqCst),
        "the head was still failing meanwhile"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_order_heads").await,
        0
    );
}

/// The `seq` of a delivery the receiver got.
fn seq_of(got: &crate::common::receiver::Received) -> u64 {
    serde_json::from_slice::<Value>(&got.body).expect("json")["data"]["seq"]
        .as_u64()
        .expect("seq")
}

/// Catches: a dead-lettered head that keeps its line blocked, a re-triggered dead letter sent beside the line's
/// head in progress, or sent after deliveries ingested after it.
#[tokio::test]
async fn a_dead_letter_lets_its_line_go_on_and_a_retrigger_rejoins_it_at_its_old_place() {
    const WAIT: Duration = Duration::from_secs(10);
    let app = TestApp::spawn().await;
    // seq 0 fails five times (dead-lettered), seq 1 fails once, then everything is accepted.
    let mut receiver = Receiver::start(&[500, 500, 500, 500, 500, 500]).await;
    let (_, _) = create(&app, "store-o", &receiver.url(), json!({"ordering": {}})).await;
    let mut ids = Vec::new();
    for seq in 0..3 {
        let e = event(
            "order.updated",
            "store-o",
            json!({"orderId": "o0", "seq": seq}),
        );
        ids.push(app.first_delivery(&e).await);
    }
    let worker = app.worker("w1").await;
    let due = crate::common::due_times();
    for at in &due[..4] {
        app.assert_runs_at(&worker, *at, "only the head").await;
        assert_eq!(seq_of(&receiver.next(WAIT).await), 0);
    }
    // The fifth failure dead-letters the head; seq 1 goes on in the same run, and fails once.
    app.clock.set(due[4]);
    assert_eq!(worker.run_pending_jobs().await.expect("run"), 2);
    assert_eq!(seq_of(&receiver.next(WAIT).await), 0);
    assert_eq!(seq_of(&receiver.next(WAIT).await), 1);
    assert_eq!(
        app.delivery("store-o", &ids[0]).await.status,
        "DEAD_LETTERED"
    );
    assert_eq!(app.delivery("store-o", &ids[1]).await.status, "FAILED");
    assert_eq!(app.delivery("store-o", &ids[2]).await.status, "PENDING");

    // Re-triggered while seq 1 is in progress: it waits for seq 1, then goes before seq 2.
    let response = app
        .as_store(
            Method::POST,
            &format!("/deliveries/{}/retrigger", ids[0]),
            "store-o",
        )
        .send()
        .await
        .expect("retrigger");
    assert_eq!(response.status(), 200);
    assert_eq!(
        worker.run_pending_jobs().await.expect("run"),
        0,
        "nothing beside the head"
    );
    receiver.expect_silence(Duration::from_millis(200)).await;
    app.clock.set(due[4] + chrono::Duration::minutes(1));
    assert_eq!(worker.run_pending_jobs().await.expect("run"), 3);
    let order: Vec<u64> = [
        receiver.next(WAIT).await,
        receiver.next(WAIT).await,
        receiver.next(WAIT).await,
    ]
    .iter()
    .map(seq_of)
    .collect();
    assert_eq!(order, vec![1, 0, 2]);
    for id in &ids {
        assert_eq!(app.delivery("store-o", id).await.status, "DELIVERED");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_order_heads").await,
        0
    );
}
