//! The delivery pipeline driven by hand: HTTP ingest, a worker stepped with `run_once`, an injected clock.

use std::time::Duration;

use chrono::Duration as Minutes;
use reqwest::Method;
use serde_json::{Value, json};
use workflows::signing::{DEFAULT_TOLERANCE_SECS, verify_ss3, verify_standard};

use crate::common::client::{IngestResult, JsonAnswer, expect_json};
use crate::common::{Receiver, TestApp, due_times, event, t0};

const WAIT: Duration = Duration::from_secs(10);

/// Catches: wrong headers, a signature over other bytes than those sent, the wrong key.
#[tokio::test]
async fn event_reaches_the_receiver_signed_with_the_subscription_secret() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let (_, secret) = app
        .subscribe("store-a", &receiver.url(), &["order.placed"])
        .await;
    let response = app
        .post_event(&event("order.placed", "store-a", json!({"orderId": "o-1"})))
        .await;
    let ingested: IngestResult = expect_json(response, 202).await;
    let delivery_id = ingested
        .delivery_ids
        .first()
        .expect("one delivery")
        .to_string();

    app.worker("w1")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    let got = receiver.next(WAIT).await;
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("x-ss3-event"), "order.placed");
    assert_eq!(got.header("x-ss3-delivery"), delivery_id);
    assert_eq!(got.header("webhook-id"), delivery_id);
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    let ts: i64 = got.header("webhook-timestamp").parse().expect("timestamp");
    assert_eq!(
        verify_standard(
            &secret,
            &delivery_id,
            got.header("webhook-timestamp"),
            got.header("webhook-signature"),
            &got.body,
            ts,
            DEFAULT_TOLERANCE_SECS
        ),
        Ok(())
    );
    let sent: Value = serde_json::from_slice(&got.body).expect("JSON body");
    assert_eq!(sent["data"]["orderId"], "o-1");
    assert_eq!(sent["eventType"], "order.placed");

    let delivery = app.delivery("store-a", &delivery_id).await;
    assert_eq!(delivery.status, "DELIVERED");
    assert_eq!(delivery.attempts.len(), 1);
    assert_eq!(delivery.attempts[0].http_status, Some(200));
    let published = app
        .count("SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'webhook.delivered'")
        .await;
    assert_eq!(published, 1, "webhook.delivered is in the outbox");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("req")
        .text()
        .await
        .expect("text");
    for line in [
        "ss3_attempts_total{attempt=\"1\"} 1",
        "ss3_jobs_total{kind=\"webhook\",outcome=\"delivered\"} 1",
        "ss3_delivery_latency_seconds_count 1",
        "ss3_events_ingested_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in /metrics");
    }
}

/// Catches: fan-out ignoring wildcards, or leaking events to another store's subscriptions.
#[tokio::test]
async fn one_event_reaches_only_the_matching_subscriptions_of_its_store() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let (exact, _) = app
        .subscribe(
            "store-a",
            &format!("{}?s=exact", receiver.url()),
            &["order.placed"],
        )
        .await;
    let (wildcard, _) = app
        .subscribe(
            "store-a",
            &format!("{}?s=wild", receiver.url()),
            &["order.*"],
        )
        .await;
    app.subscribe("store-a", &receiver.url(), &["product.updated"])
        .await;
    app.subscribe("store-b", &receiver.url(), &["*"]).await;

    let ingested = app
        .api()
        .ingest(&event("order.placed", "store-a", json!({})))
        .await;
    assert_eq!(ingested.delivery_ids.len(), 2);
    app.worker("w1")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    receiver.next(WAIT).await;
    receiver.next(WAIT).await;
    receiver.expect_silence(Duration::from_millis(300)).await;

    let rows: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT subscription_id FROM webhook_deliveries ORDER BY subscription_id")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    let mut expected = vec![exact, wildcard];
    expected.sort();
    assert_eq!(rows.into_iter().map(|r| r.0).collect::<Vec<_>>(), expected);
}

async fn attempt_times(
    app: &TestApp,
    store: &str,
    delivery_id: &str,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    let delivery = app.delivery(store, delivery_id).await;
    delivery.attempts.iter().map(|a| a.started_at).collect()
}

/// Catches: a wrong schedule, early attempts, a missing dead letter, a re-trigger that changes the delivery id.
#[tokio::test]
async fn failing_receiver_is_retried_at_1_5_30_120_minutes_then_dead_lettered_and_retrigger_delivers()
 {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[500, 500, 503, 500, 500]).await;
    app.subscribe("store-a", &receiver.url(), &["order.*"])
        .await;
    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    let worker = app.worker("w1").await;

    let due = due_times();
    for (n, at) in due.iter().enumerate() {
        let what = format!("attempt {}", n + 1);
        if n > 0 {
            app.assert_not_run_early(&worker, *at, &what).await;
            receiver.expect_silence(Duration::from_millis(100)).await;
        }
        app.assert_runs_at(&worker, *at, &what).await;
        let got = receiver.next(WAIT).await;
        assert_eq!(got.header("x-ss3-delivery"), id);
        let row = app.delivery("store-a", &id).await;
        if n < 4 {
            assert_eq!(row.status, "FAILED");
            assert_eq!(
                row.next_retry_at,
                Some(due[n + 1]),
                "next_retry_at after attempt {}",
                n + 1
            );
        }
    }
    let dead = app.delivery("store-a", &id).await;
    assert_eq!(dead.status, "DEAD_LETTERED");
    assert_eq!(dead.attempt_number, 5);
    assert_eq!(attempt_times(&app, "store-a", &id).await, due.to_vec());
    let dead_events = app
        .count("SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'webhook.dead_lettered'")
        .await;
    assert_eq!(dead_events, 1);
    let listed: Value = app
        .as_store(Method::GET, "/dead-letters", "store-a")
        .json_answer()
        .await;
    assert_eq!(listed["items"][0]["deliveryId"], id.as_str());

    // Re-trigger: fresh attempt now, same delivery id, history kept.
    app.clock.set(t0() + Minutes::hours(5));
    let response = app
        .as_store(
            Method::POST,
            &format!("/deliveries/{id}/retrigger"),
            "store-a",
        )
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 200);
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);
    let delivered = app.delivery("store-a", &id).await;
    assert_eq!(delivered.status, "DELIVERED");
    assert_eq!(delivered.attempts.len(), 6);
    assert_eq!(
        delivered.attempts[5].attempt_number, 1,
        "the schedule restarted"
    );
    let again = app
        .as_store(
            Method::POST,
            &format!("/deliveries/{id}/retrigger"),
            "store-a",
        )
        .send()
        .await
        .expect("req");
    assert_eq!(
        again.status(),
        409,
        "a delivered delivery is not dead: use resend"
    );
}

/// Catches: a duplicate event id (platform retry) fanning out twice.
#[tokio::test]
async fn a_duplicate_event_id_creates_no_second_delivery() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;
    let e = event(
        "inventory.updated",
        "store-a",
        json!({"sku": "A", "quantity": 3}),
    );
    assert_eq!(app.post_event(&e).await.status(), 202);
    let second: IngestResult = expect_json(app.post_event(&e).await, 200).await;
    assert!(!second.accepted);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs").await, 1);
}

/// Catches: delivery ids that are random again (each insert into the log's keys lands on a random, rarely cached
/// page of a large index) rather than time-ordered UUIDv7s.
#[tokio::test]
async fn delivery_ids_are_time_ordered_uuid_v7s() {
    let app = TestApp::spawn().await;
    app.subscribe("store-a", "http://127.0.0.1:9/hook", &["*"])
        .await;
    for n in 0..3 {
        let e = event("order.placed", "store-a", json!({"n": n}));
        assert_eq!(app.post_event(&e).await.status(), 202);
        // A millisecond apart at least: ids of one millisecond share their timestamp and order at random.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT delivery_id FROM webhook_deliveries ORDER BY created_at")
            .fetch_all(&app.pool)
            .await
            .expect("ids");
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in the order they were made: {ids:?}"
    );
}

/// Catches: retries continuing to a subscription that was switched off, or the log losing a deleted subscription's rows.
#[tokio::test]
async fn deactivation_stops_pending_retries_and_deletion_keeps_the_log() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[500]).await;
    let (sub, _) = app
        .subscribe("store-a", &receiver.url(), &["order.placed"])
        .await;
    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    let worker = app.worker("w1").await;
    worker.run_pending_jobs().await.expect("run");
    receiver.next(WAIT).await;
    assert_eq!(app.delivery("store-a", &id).await.status, "FAILED");

    let patched = app
        .as_store(Method::PATCH, &format!("/subscriptions/{sub}"), "store-a")
        .json(&json!({"isActive": false}))
        .send()
        .await
        .expect("req");
    assert_eq!(patched.status(), 200);
    let cancelled = app.delivery("store-a", &id).await;
    assert_eq!(cancelled.status, "CANCELLED");
    assert_eq!(
        cancelled.last_error.as_deref(),
        Some("subscription deactivated")
    );
    app.clock.set(t0() + Minutes::minutes(2));
    worker.run_pending_jobs().await.expect("run");
    receiver.expect_silence(Duration::from_millis(200)).await;

    let deleted = app
        .as_store(Method::DELETE, &format!("/subscriptions/{sub}"), "store-a")
        .send()
        .await
        .expect("req");
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.as_store(Method::GET, &format!("/subscriptions/{sub}"), "store-a")
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    let log: Value = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{sub}/deliveries"),
            "store-a",
        )
        .json_answer()
        .await;
    assert_eq!(
        log["items"].as_array().map(Vec::len),
        Some(1),
        "the deleted subscription's deliveries stay in the log"
    );
}

/// Catches: resend refusing delivered deliveries, or bulk re-trigger touching the wrong rows.
#[tokio::test]
async fn resend_repeats_a_delivered_delivery_and_bulk_retrigger_restarts_dead_letters_since_a_time()
{
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, _) = app
        .subscribe("store-a", &receiver.url(), &["order.placed"])
        .await;
    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    let worker = app.worker("w1").await;
    worker.run_pending_jobs().await.expect("run");
    receiver.next(WAIT).await;
    let resend = app
        .as_store(Method::POST, &format!("/deliveries/{id}/resend"), "store-a")
        .send()
        .await
        .expect("req");
    assert_eq!(resend.status(), 200);
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);

    // Two dead letters, made so directly; bulk re-trigger since "a minute ago" restarts both.
    sqlx::query("UPDATE webhook_deliveries SET status = 'DEAD_LETTERED', attempt_number = 5, updated_at = now()")
        .execute(&app.pool)
        .await
        .expect("update");
    let second = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    sqlx::query("UPDATE webhook_deliveries SET status = 'DEAD_LETTERED', attempt_number = 5, updated_at = now() - interval '1 day' WHERE delivery_id = $1::uuid")
        .bind(&second)
        .execute(&app.pool)
        .await
        .expect("update");
    let since = chrono::Utc::now() - Minutes::minutes(1);
    let response = app
        .as_store(
            Method::POST,
            &format!("/subscriptions/{sub}/dead-letters/retrigger"),
            "store-a",
        )
        .json(&json!({"since": since}))
        .send()
        .await
        .expect("req");
    let restarted: Value = response.json().await.expect("json");
    assert_eq!(
        restarted["deliveryIds"],
        json!([id]),
        "only the dead letter from after `since`"
    );
}

/// Catches: the test endpoint bypassing the pipeline (no delivery row, unsigned) or ignoring the event filter.
#[tokio::test]
async fn the_test_endpoint_sends_a_signed_webhook_test_event_through_the_pipeline() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, secret) = app
        .subscribe("store-a", &receiver.url(), &["order.placed"])
        .await;
    let response = app
        .as_store(
            Method::POST,
            &format!("/subscriptions/{sub}/test"),
            "store-a",
        )
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let delivery_id = body["deliveryId"].as_str().expect("delivery").to_owned();
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let got = receiver.next(WAIT).await;
    assert_eq!(
        got.header("x-ss3-event"),
        "webhook.test",
        "sent although the subscription filters order.placed only"
    );
    assert_eq!(got.header("x-ss3-delivery"), delivery_id);
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    assert_eq!(
        app.delivery("store-a", &delivery_id).await.status,
        "DELIVERED"
    );
}

/// Catches: a test of a catalog type sending something else than the catalog's example, reaching other
/// subscriptions of the store, or a type outside the catalog being accepted.
#[tokio::test]
async fn the_test_endpoint_sends_the_catalogs_example_of_a_type_to_that_subscription_only() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let mut other = Receiver::start(&[]).await;
    let (sub, _) = app
        .subscribe("store-a", &receiver.url(), &["order.*"])
        .await;
    app.subscribe("store-a", &other.url(), &["order.*"]).await;
    let path = format!("/subscriptions/{sub}/test?eventType=order.paid");
    let response = app
        .as_store(Method::POST, &path, "store-a")
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 202);
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let got = receiver.next(WAIT).await;
    assert_eq!(got.header("x-ss3-event"), "order.paid");
    let sent: Value = serde_json::from_slice(&got.body).expect("json body");
    let example = &workflows::event_types::get("order.paid")
        .expect("in the catalog")
        .example;
    assert_eq!(&sent["data"], example, "the catalog's example data");
    other.expect_silence(Duration::from_millis(300)).await;

    let unknown = app
        .as_store(
            Method::POST,
            &format!("/subscriptions/{sub}/test?eventType=order.shiped"),
            "store-a",
        )
        .send()
        .await
        .expect("req");
    let (status, problem) = crate::common::problem(unknown).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("unknown_event_type"))
    );
}
