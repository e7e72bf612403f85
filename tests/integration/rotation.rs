//! Signing-secret rotation with overlap: during the grace a receiver verifying with the old secret keeps working
//! (Standard Webhooks' `webhook-signature` carries both), afterwards only the new secret verifies.

use std::time::Duration;

use chrono::Duration as Minutes;
use reqwest::Method;
use serde_json::{Value, json};
use workflows::signing::{verify_ss3, verify_standard};

use crate::common::client::JsonAnswer;
use crate::common::receiver::{Received, Receiver};
use crate::common::{TestApp, event, problem, t0};

const WAIT: Duration = Duration::from_secs(10);

fn standard(got: &Received, secret: &str) -> bool {
    verify_standard(
        secret,
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
        &got.body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .is_ok()
}

async fn deliver_one(app: &TestApp, receiver: &mut Receiver) -> Received {
    app.post_event(&event("order.placed", "store-a", json!({})))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    receiver.next(WAIT).await
}

/// Catches: a rotation that cuts off receivers still verifying with the old secret during the grace, one that
/// keeps the old secret signing after it, `X-SS3-Signature` made with the old secret, an over-long grace, and
/// another store rotating a subscription that is not its own.
#[tokio::test]
async fn during_the_grace_both_secrets_verify_and_afterwards_only_the_new_one() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, old) = app
        .subscribe("store-a", &receiver.url(), &["order.*"])
        .await;
    let path = format!("/subscriptions/{sub}/rotate-secret");
    let rotated: Value = app
        .as_store(Method::POST, &path, "store-a")
        .json(&json!({"graceSeconds": 3600}))
        .json_answer()
        .await;
    let new = rotated["signingSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_ne!(new, old);
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(rotated["previousValidUntil"].clone()).expect("a time");
    assert_eq!(
        until,
        t0() + Minutes::hours(1),
        "an hour of the service clock"
    );

    let during = deliver_one(&app, &mut receiver).await;
    assert!(
        standard(&during, &old),
        "the old secret verifies during the grace"
    );
    assert!(standard(&during, &new), "the new one too");
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert!(verify_ss3(&new, &during.body, during.header("x-ss3-signature")).is_ok());
    assert!(verify_ss3(&old, &during.body, during.header("x-ss3-signature")).is_err());

    app.clock
        .set(t0() + Minutes::hours(1) + Minutes::seconds(1));
    let after = deliver_one(&app, &mut receiver).await;
    assert!(!standard(&after, &old), "the old secret no longer verifies");
    assert!(standard(&after, &new));
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);

    // Without a grace the old secret stops at once; the oldest version is removed from the store.
    let again: Value = app
        .as_store(Method::POST, &path, "store-a")
        .json(&json!({}))
        .json_answer()
        .await;
    assert_eq!(again["previousValidUntil"], Value::Null);
    let newest = again["signingSecret"].as_str().expect("secret").to_owned();
    let last = deliver_one(&app, &mut receiver).await;
    assert!(standard(&last, &newest) && !standard(&last, &new));

    let too_long = app
        .as_store(Method::POST, &path, "store-a")
        .json(&json!({"graceSeconds": 604_801}))
        .send()
        .await
        .expect("request");
    let (status, body) = problem(too_long).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_grace"))
    );
    let other = app
        .as_store(Method::POST, &path, "store-b")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 404);
}
