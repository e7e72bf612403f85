//! The event catalog over HTTP (`GET /event-types`) and the warnings subscriptions get for types outside it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::client::{IssuedCredential, expect_json};
use crate::common::{ADMIN_TOKEN, TestApp, problem};

/// `GET /event-types` presenting `token` (no `X-SS3-Store-Id`: the catalog belongs to no store).
async fn catalog(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let request = app.http.get(app.url("/event-types"));
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    request.send().await.expect("request sent")
}

/// Catches: the route serving something else than the compiled catalog, refusing a store's key that lacks
/// `webhooks:manage` (the catalog is reference data, not the store's), or answering anonymous callers.
#[tokio::test]
async fn the_event_catalog_is_served_to_operators_and_any_store_key_but_not_to_anonymous_callers() {
    let app = TestApp::spawn().await;
    let served: Vec<Value> = expect_json(catalog(&app, Some(ADMIN_TOKEN)).await, 200).await;
    let compiled = workflows::event_types::all();
    let types: Vec<&str> = served.iter().filter_map(|e| e["type"].as_str()).collect();
    let want: Vec<&str> = compiled.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, want);
    let fulfilled = served
        .iter()
        .find(|e| e["type"] == "order.fulfilled")
        .expect("order.fulfilled is served");
    let entry = workflows::event_types::get("order.fulfilled").expect("in the catalog");
    assert_eq!(fulfilled["example"], entry.example);
    assert_eq!(fulfilled["schema"], entry.schema);
    assert!(
        fulfilled["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    let updated = served.iter().find(|e| e["type"] == "order.updated");
    assert_eq!(
        updated.map(|e| &e["previousAttributes"]),
        Some(&json!({"status": "pending"}))
    );

    let key: IssuedCredential = app
        .api()
        .create_key("store-a", "catalog reader", &["catalog:read"])
        .await;
    let as_store: Vec<Value> = expect_json(catalog(&app, Some(key.key())).await, 200).await;
    assert_eq!(as_store, served);

    for token in [None, Some("not-a-credential")] {
        let (status, p) = problem(catalog(&app, token).await).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
    }
}

/// The `warnings` of a create or update answer.
fn warnings(answer: &Value) -> Vec<&str> {
    answer["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings array in {answer}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// Catches: a subscription to a misspelt type saved without a word (its receiver would wait forever), a refusal
/// of types the catalog does not list yet, and warnings for patterns that do select catalog types.
#[tokio::test]
async fn subscribing_to_a_type_outside_the_catalog_is_saved_with_a_warning() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "typo", "targetUrl": "http://example.com/hook",
        "events": ["order.placed", "order.shiped", "shipment.*", "order.*"]});
    let response = app
        .as_store(Method::POST, "/subscriptions", "store-a")
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let created: Value = expect_json(response, 201).await;
    assert_eq!(
        created["subscription"]["events"],
        json!(["order.placed", "order.shiped", "shipment.*", "order.*"])
    );
    assert_eq!(
        warnings(&created),
        [
            "event type `order.shiped` is not in the event catalog (GET /event-types)",
            "event pattern `shipment.*` matches no type in the event catalog (GET /event-types)",
        ]
    );
    let id = created["subscription"]["subscriptionId"]
        .as_str()
        .expect("id")
        .to_owned();

    let patch = |changes: Value| {
        app.as_store(Method::PATCH, &format!("/subscriptions/{id}"), "store-a")
            .json(&changes)
            .send()
    };
    let renamed: Value = expect_json(
        patch(json!({"name": "still a typo"})).await.expect("sent"),
        200,
    )
    .await;
    assert_eq!(renamed["name"], "still a typo");
    assert_eq!(
        warnings(&renamed).len(),
        2,
        "the stored events are judged: {renamed}"
    );
    let fixed: Value = expect_json(
        patch(json!({"events": ["order.shipped", "order.fulfilled", "*"]}))
            .await
            .expect("sent"),
        200,
    )
    .await;
    assert_eq!(
        warnings(&fixed),
        ["event type `order.shipped` is not in the event catalog (GET /event-types)"]
    );
    let clean: Value = expect_json(
        patch(json!({"events": ["order.fulfilled", "product.*", "*"]}))
            .await
            .expect("sent"),
        200,
    )
    .await;
    assert!(warnings(&clean).is_empty(), "{clean}");
    assert_eq!(clean["subscriptionId"], json!(id));
}
