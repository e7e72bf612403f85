//! Per-subscription rate limits: `maxPerSecond` paces a subscription's deliveries across every worker process
//! through the limiter the connectors share; a backlog over it waits without counting attempts or holding worker
//! slots, so another subscription's deliveries go out meanwhile.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::client::JsonAnswer;
use crate::common::process::ServiceProcess;
use crate::common::receiver::Receiver;
use crate::common::{TestApp, event};

/// Catches: a limit applied per process (two workers would deliver twice as fast), a paced delivery counted as an
/// attempt or dead-lettered, and paced deliveries holding the worker slots another subscription needs.
#[tokio::test]
async fn two_worker_processes_pace_a_subscription_to_its_limit_while_another_is_not_held_back() {
    let (app, env) = TestApp::api_only(&[]).await;
    let mut limited_to = Receiver::start(&[]).await;
    let mut free_to = Receiver::start(&[]).await;
    let created: Value = app
        .as_store(Method::POST, "/subscriptions", "store-r")
        .json(&json!({"name": "paced", "targetUrl": limited_to.url(), "events": ["order.*"], "maxPerSecond": 4}))
        .json_answer()
        .await;
    assert_eq!(created["subscription"]["maxPerSecond"], 4.0);
    let limited: Uuid =
        serde_json::from_value(created["subscription"]["subscriptionId"].clone()).expect("id");
    app.subscribe("store-r", &free_to.url(), &["order.*"]).await;
    for i in 0..12 {
        let e = event("order.placed", "store-r", json!({"n": i}));
        assert_eq!(app.post_event(&e).await.status(), 202);
    }

    let _w1 = ServiceProcess::spawn("worker", &env, "paced-worker-1");
    let _w2 = ServiceProcess::spawn("worker", &env, "paced-worker-2");

    let mut free = Vec::new();
    for _ in 0..12 {
        free.push(free_to.next(Duration::from_secs(30)).await.at);
    }
    let mut paced = Vec::new();
    for _ in 0..12 {
        paced.push(limited_to.next(Duration::from_secs(60)).await.at);
    }
    paced.sort();
    free.sort();
    assert!(
        free[11] < paced[6],
        "the free subscription's 12 were all delivered while the paced one was still at its 7th"
    );
    // Turns are 250 ms apart in Postgres; arrivals carry each process's jitter, so the check is on rate: any second
    // holds at most 4 plus the burst of 1 (two processes each limited on its own would put ~8 there).
    let windows: Vec<usize> = paced
        .iter()
        .map(|a| {
            paced
                .iter()
                .filter(|b| **b >= *a && **b - *a < Duration::from_secs(1))
                .count()
        })
        .collect();
    assert!(windows.iter().all(|&n| n <= 5), "{windows:?}");
    let span = paced[11] - paced[0];
    assert!(
        span >= Duration::from_millis(250 * 11).mul_f64(0.9),
        "12 in {span:?}"
    );

    // The last attempts are recorded by the workers' flushes, just after the receiver got them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let items = loop {
        let log: Value = app
            .as_store(
                Method::GET,
                &format!("/subscriptions/{limited}/deliveries"),
                "store-r",
            )
            .json_answer()
            .await;
        let items = log["items"].as_array().expect("items").clone();
        let done = items.iter().all(|d| d["status"] == "DELIVERED");
        if done || tokio::time::Instant::now() > deadline {
            break items;
        }
        crate::common::wait::pause().await;
    };
    assert_eq!(items.len(), 12);
    for d in &items {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attemptNumber"], 1, "pacing is not an attempt: {d}");
    }
}

/// Catches: a limit of zero, a negative one or an absurd one accepted; a limit that cannot be removed.
#[tokio::test]
async fn a_rate_limit_outside_its_range_is_refused_and_null_removes_it() {
    let app = TestApp::spawn().await;
    for bad in [json!(0), json!(-1), json!(10_001)] {
        let body = json!({"name": "x", "targetUrl": "http://127.0.0.1:9/", "events": ["*"], "maxPerSecond": bad});
        let (status, doc) = app.post_refused("/subscriptions", "store-r", &body).await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (422, Some("invalid_max_per_second")),
            "{bad}"
        );
    }
    let (id, _) = app
        .subscribe("store-r", "http://127.0.0.1:9/", &["*"])
        .await;
    let path = format!("/subscriptions/{id}");
    let set: Value = app
        .as_store(Method::PATCH, &path, "store-r")
        .json(&json!({"maxPerSecond": 0.5}))
        .json_answer()
        .await;
    assert_eq!(set["maxPerSecond"], 0.5);
    let cleared: Value = app
        .as_store(Method::PATCH, &path, "store-r")
        .json(&json!({"maxPerSecond": null}))
        .json_answer()
        .await;
    assert!(
        cleared.get("maxPerSecond").is_none_or(Value::is_null),
        "{cleared}"
    );
}
