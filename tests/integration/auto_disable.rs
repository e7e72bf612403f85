//! Auto-disable of dead endpoints (issue 13), on the manual clock: a subscription whose every attempt failed for the
//! window, with enough dead letters, is deactivated with a reason, its waiting retries cancelled and
//! `webhook.subscription_disabled` published; one success starts the window again; too few dead letters keep it;
//! activating it again offers its dead letters for re-trigger and counts failures from then on.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeDelta, Utc};
use integration_service::db::auto_disable::{self, Policy};
use jobs::queue::effects::Topics;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::client::JsonAnswer;
use crate::common::{Receiver, TestApp, due_times, event, t0};

/// A date-time field of an answer.
fn time_of(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a date-time: {v}"))
}

const POLICY: Policy = Policy {
    after: TimeDelta::days(5),
    min_dead_letters: 2,
};

/// Catches: a dead endpoint retried forever (no auto-disable); a subscription disabled although it delivered within
/// the window, or with fewer dead letters than required; a disable nobody is told about (no event, no reason); a
/// re-enabled subscription disabled again at once by its old failures.
#[tokio::test]
async fn a_subscription_that_only_fails_for_the_window_is_disabled_with_notice_and_can_come_back() {
    let app = TestApp::spawn().await;
    let dead = Receiver::start(&[500; 20]).await;
    let recovered = Receiver::start(&[500; 10]).await;
    let sparse = Receiver::start(&[500; 5]).await;
    let (dead_sub, _) = app.subscribe("store-a", &dead.url(), &["order.*"]).await;
    let (recovered_sub, _) = app
        .subscribe("store-a", &recovered.url(), &["order.*"])
        .await;
    let (sparse_sub, _) = app
        .subscribe("store-a", &sparse.url(), &["customer.created"])
        .await;
    for body in [
        event("order.placed", "store-a", json!({"n": 1})),
        event("order.paid", "store-a", json!({"n": 2})),
        event("customer.created", "store-a", json!({"n": 3})),
    ] {
        assert_eq!(app.post_event(&body).await.status(), 202);
    }
    let worker = app.worker("w1").await;
    for at in due_times() {
        app.clock.set(at);
        worker.run_pending_jobs().await.expect("run");
    }
    // A day later the recovered receiver answers again (it was told to fail ten times): one delivery each.
    app.clock.set(t0() + Duration::days(1));
    assert_eq!(
        app.post_event(&event("order.placed", "store-a", json!({"n": 4})))
            .await
            .status(),
        202
    );
    worker.run_pending_jobs().await.expect("run");
    // ...while the dead one has a retry waiting (it fails now and again in a minute).
    let topics = Topics::new(BTreeMap::new());
    let check = |at| auto_disable::check(&app.pool, POLICY, at, &topics);

    let early = check(t0() + Duration::days(5)).await.expect("check");
    assert!(early.is_empty(), "not failing for five days yet: {early:?}");
    let now = t0() + Duration::days(5) + Duration::hours(2);
    app.clock.set(now);
    let disabled = check(now).await.expect("check");
    assert_eq!(
        disabled
            .iter()
            .map(|d| d.subscription_id.uuid())
            .collect::<Vec<_>>(),
        vec![dead_sub],
        "only the one that failed throughout with enough dead letters (not {recovered_sub}, not {sparse_sub})"
    );
    assert_eq!(disabled[0].dead_letters, 2);
    assert_eq!(
        disabled[0].failing_since,
        t0(),
        "the hour of its first failure"
    );
    assert!(
        check(now).await.expect("check again").is_empty(),
        "disabled once"
    );

    let sub: Value = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{dead_sub}"),
            "store-a",
        )
        .json_answer()
        .await;
    assert_eq!(sub["isActive"], false);
    assert_eq!(time_of(&sub["autoDisabled"]["failingSince"]), t0());
    assert!(
        sub["autoDisabled"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2 dead letters")),
        "{sub}"
    );
    let published: Vec<Value> = sqlx::query_scalar(
        "SELECT m FROM outbox, jsonb_array_elements(messages) AS m WHERE topic = 'webhook.subscription_disabled'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(published.len(), 1);
    let data = &published[0]["value"]["data"];
    assert_eq!(data["subscriptionId"], json!(dead_sub));
    assert_eq!(data["storeId"], "store-a");
    assert_eq!(data["deadLetters"], 2);
    assert_eq!(
        published[0]["value"]["eventType"],
        "webhook.subscription_disabled"
    );
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status IN ('PENDING', 'FAILED')",
    )
    .bind(dead_sub)
    .fetch_one(&app.pool)
    .await
    .expect("waiting");
    assert_eq!(waiting, 0, "its waiting retry was cancelled");

    // Activated again: the answer offers its dead letters; its old failures no longer count.
    let activated: Value = app
        .as_store(
            Method::PATCH,
            &format!("/subscriptions/{dead_sub}"),
            "store-a",
        )
        .json(&json!({"isActive": true}))
        .json_answer()
        .await;
    assert_eq!(activated["isActive"], true);
    assert_eq!(activated["autoDisabled"], Value::Null);
    assert_eq!(activated["retriggerOffer"]["deadLetters"], 2);
    assert_eq!(time_of(&activated["retriggerOffer"]["since"]), t0());
    assert!(
        check(now + Duration::hours(1))
            .await
            .expect("check")
            .is_empty(),
        "a re-enabled subscription gets a whole window"
    );
    let retriggered: Value = app
        .as_store(
            Method::POST,
            &format!("/subscriptions/{dead_sub}/dead-letters/retrigger"),
            "store-a",
        )
        .json(&json!({"since": activated["retriggerOffer"]["since"]}))
        .json_answer()
        .await;
    assert_eq!(
        retriggered["deliveryIds"].as_array().map(Vec::len),
        Some(2),
        "{retriggered}"
    );
}
