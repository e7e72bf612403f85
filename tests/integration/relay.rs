//! The outbox relay against a real broker (tansu): a row the broker refuses does not hold back the rows behind it.

use std::time::{Duration, Instant};

use integration_service::startup::Roles;
use uuid::Uuid;

use crate::common::kafka::{brokers, one_topic};
use crate::common::{TestApp, TestDb, test_config};

async fn outbox_row(app: &TestApp, topic: &str, key: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO outbox (topic, messages) VALUES ($1, jsonb_build_array(jsonb_build_object('key', $2::text,
           'value', '{\"eventType\": \"webhook.delivered\"}'::jsonb))) RETURNING outbox_id",
    )
    .bind(topic)
    .bind(key)
    .fetch_one(&app.pool)
    .await
    .expect("outbox row")
}

async fn exists(app: &TestApp, id: i64) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE outbox_id = $1)")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("exists")
}

/// Until the row is gone (published and deleted), at most `within`; returns how long it took.
async fn gone_within(app: &TestApp, id: i64, within: Duration) -> Duration {
    let started = Instant::now();
    while exists(app, id).await {
        assert!(
            started.elapsed() < within,
            "outbox row {id} still there after {within:?}"
        );
        crate::common::wait::pause().await;
    }
    started.elapsed()
}

/// Catches: a row that can never be published (its topic does not exist; tansu creates none) sent again on every
/// pass and stalling the relay behind it, or deleted without having been published.
#[tokio::test]
async fn a_row_the_broker_refuses_waits_while_the_rows_behind_it_are_published_and_deleted() {
    let run = Uuid::new_v4().simple().to_string();
    let publish = format!("integration.r{run}.webhooks");
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.kafka.brokers = brokers();
    config.kafka.topic_regex = format!("^ss3\\.r{run}\\..+");
    config.kafka.publish_topics = one_topic(&publish);
    config.worker.time_scale = 1.0;
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;

    let refused = outbox_row(&app, &format!("ss3-missing-{run}"), "refused").await;
    let first = outbox_row(&app, &publish, "first").await;
    // Published with the refused row in the same pass, which ends when the refused row times out (5 s).
    gone_within(&app, first, Duration::from_secs(30)).await;
    assert!(exists(&app, refused).await, "the refused row stays");

    // The refused row now waits its turn: the next row goes at once, not after it.
    let next = outbox_row(&app, &publish, "next").await;
    let took = gone_within(&app, next, Duration::from_secs(30)).await;
    assert!(
        took < Duration::from_secs(4),
        "the next row waited {took:?} behind the refused one"
    );
    assert!(
        exists(&app, refused).await,
        "the refused row is never deleted unpublished"
    );
}
