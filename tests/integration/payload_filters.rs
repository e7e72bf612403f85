//! Payload filters: an SQL/JSON path predicate on a subscription decides, inside the fan-out statement, which
//! events of its types it gets; refused at creation unless Postgres parses it as a predicate; tried out with
//! `POST /subscriptions/filter-test`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::client::JsonAnswer;
use crate::common::receiver::Receiver;
use crate::common::{TestApp, event, problem};

const WAIT: Duration = Duration::from_secs(10);

async fn subscribe_filtered(app: &TestApp, target: &str, filter: Value) -> reqwest::Response {
    app.as_store(Method::POST, "/subscriptions", "store-f")
        .json(&json!({"name": "f", "targetUrl": target, "events": ["order.*"], "payloadFilter": filter}))
        .send()
        .await
        .expect("request sent")
}

/// `PATCH` a subscription's payload filter (`null` removes it); the subscription as changed.
async fn set_filter(app: &TestApp, sub: Uuid, filter: Value) -> Value {
    app.as_store(Method::PATCH, &format!("/subscriptions/{sub}"), "store-f")
        .json(&json!({ "payloadFilter": filter }))
        .json_answer()
        .await
}

/// An `order.placed` event of the tests' store.
fn order(data: Value) -> Value {
    event("order.placed", "store-f", data)
}

/// The event ids of a subscription's delivery log.
async fn logged(app: &TestApp, sub: Uuid) -> Vec<String> {
    let page: Value = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{sub}/deliveries"),
            "store-f",
        )
        .json_answer()
        .await;
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["eventId"].as_str().expect("eventId").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Catches: a filter ignored (every event delivered), evaluated on the wrong document (`previousAttributes`
/// not seen), a filter that cannot be evaluated on an event stalling or failing ingest, a filter changed or
/// removed without effect, and the filtered delivery not reaching the receiver.
#[tokio::test]
async fn only_events_the_filter_matches_are_delivered_to_the_filtered_subscription() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let created: Value = subscribe_filtered(
        &app,
        &receiver.url(),
        json!(r#"$.data.total > 100 && $.data.currency == "EUR""#),
    )
    .await
    .json()
    .await
    .expect("created");
    let filtered: Uuid =
        serde_json::from_value(created["subscription"]["subscriptionId"].clone()).expect("id");
    assert!(
        created["subscription"]["payloadFilter"].is_string(),
        "{created}"
    );
    let (unfiltered, _) = app
        .subscribe("store-f", &receiver.url(), &["order.*"])
        .await;

    let big = order(json!({"total": 150, "currency": "EUR"}));
    let small = order(json!({"total": 50, "currency": "EUR"}));
    let dollars = order(json!({"total": 500, "currency": "USD"}));
    // `total` a string: the comparison cannot be evaluated; the event is not delivered there, and ingest goes on.
    let odd = order(json!({"total": "lots", "currency": "EUR"}));
    for e in [&big, &small, &dollars, &odd] {
        assert_eq!(app.post_event(e).await.status(), 202);
    }
    assert_eq!(
        logged(&app, filtered).await,
        [big["eventId"].as_str().expect("id")]
    );
    assert_eq!(logged(&app, unfiltered).await.len(), 4);

    app.worker("w").await.run_pending_jobs().await.expect("run");
    let mut to_filtered = 0;
    for _ in 0..5 {
        let got = receiver.next(WAIT).await;
        let body: Value = serde_json::from_slice(&got.body).expect("JSON");
        if body["data"]["total"] == 150 {
            to_filtered += 1;
        }
    }
    assert_eq!(to_filtered, 2, "the big order reached both subscriptions");

    // "only when status changed to shipped": previousAttributes is part of the document.
    let shipped = r#"$.data.status == "shipped" && $.previousAttributes.status != "shipped""#;
    let patched = set_filter(&app, filtered, json!(shipped)).await;
    assert!(patched["payloadFilter"].is_string());
    let mut changed = event("order.updated", "store-f", json!({"status": "shipped"}));
    changed["previousAttributes"] = json!({"status": "paid"});
    let mut unchanged = event("order.updated", "store-f", json!({"status": "shipped"}));
    unchanged["previousAttributes"] = json!({"status": "shipped"});
    for e in [&changed, &unchanged] {
        assert_eq!(app.post_event(e).await.status(), 202);
    }
    let mut want = vec![
        big["eventId"].as_str().expect("id").to_owned(),
        changed["eventId"].as_str().expect("id").to_owned(),
    ];
    want.sort();
    assert_eq!(logged(&app, filtered).await, want);

    let cleared = set_filter(&app, filtered, Value::Null).await;
    assert!(
        cleared.get("payloadFilter").is_none_or(Value::is_null),
        "{cleared}"
    );
    assert_eq!(app.post_event(&small).await.status(), 200, "a duplicate");
    let fresh = order(json!({"total": 1}));
    assert_eq!(app.post_event(&fresh).await.status(), 202);
    assert_eq!(
        logged(&app, filtered).await.len(),
        3,
        "no filter: every event"
    );
}

/// Catches: a filter Postgres cannot parse, or a path that is not a predicate (which would match nothing, ever),
/// accepted; or refused without saying why.
#[tokio::test]
async fn a_filter_that_is_not_a_predicate_is_refused_with_the_reason_and_filter_test_evaluates_one()
{
    let app = TestApp::spawn().await;
    for bad in [
        json!("$.data.total >"),
        json!("$.data.total"),
        json!(""),
        json!(42),
    ] {
        let (status, doc) =
            problem(subscribe_filtered(&app, "http://127.0.0.1:9/", bad.clone()).await).await;
        assert_eq!(status, 422, "{bad}: {doc}");
        assert_eq!(doc["code"], "invalid_payload_filter", "{bad}: {doc}");
    }
    let (_, syntax) =
        problem(subscribe_filtered(&app, "http://127.0.0.1:9/", json!("$.data.total >")).await)
            .await;
    assert!(
        syntax["detail"]
            .as_str()
            .is_some_and(|d| d.contains("syntax")),
        "{syntax}"
    );

    let try_it = |filter: &str, event: Value| {
        app.as_store(Method::POST, "/subscriptions/filter-test", "store-f")
            .json(&json!({"payloadFilter": filter, "event": event}))
    };
    let example = json!({"eventType": "order.placed", "data": {"total": 150}});
    let yes: Value = try_it("$.data.total > 100", example.clone())
        .json_answer()
        .await;
    assert_eq!(yes, json!({"matches": true}));
    let no: Value = try_it("$.data.total > 200", example).json_answer().await;
    assert_eq!(no, json!({"matches": false}));
    let (status, doc) = problem(try_it("$.x", json!({})).send().await.expect("sent")).await;
    assert_eq!(
        (status, doc["code"].as_str()),
        (422, Some("invalid_payload_filter"))
    );
    let (status, doc) = problem(try_it("$.x == 1", json!([1])).send().await.expect("sent")).await;
    assert_eq!(
        (status, doc["code"].as_str()),
        (422, Some("event_not_object"))
    );
}
