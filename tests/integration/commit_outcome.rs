//! Issue 15, ingest clause: a batch whose commit outcome is unknown is re-checked, not assumed. A proxy in front of
//! the real Postgres cuts the ingest connection exactly at a batch's COMMIT (after Postgres committed, or before
//! it could), through real Kafka (tansu); every event must then be stored and delivered exactly once.

use std::collections::HashSet;
use std::time::Duration;

use integration_service::startup::Roles;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::kafka::{brokers, create_topics, produce, producer};
use crate::common::pg_proxy::{Cut, PgProxy};
use crate::common::{Receiver, TestApp, TestDb, event, test_config};

const WAIT: Duration = Duration::from_secs(30);
const EVENTS: usize = 5;

/// host:port of the test database's server.
fn upstream(database_url: &str) -> String {
    let url = url::Url::parse(database_url).expect("database url");
    format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    )
}

async fn cut_one_batch_commit_and_check_every_event_arrives_once(cut: Cut) {
    let run = Uuid::new_v4().simple().to_string();
    let topic = format!("ss3.t{run}.orders");
    create_topics(std::slice::from_ref(&topic)).await;
    let db = TestDb::create().await;
    let direct = db.url.clone();
    let proxy = PgProxy::start(upstream(&db.url), "INSERT INTO ingested_events").await;
    let mut config = test_config(&db);
    config.database_url = integration_service::config::Secret::new(proxy.url(&db.url));
    config.kafka.brokers = brokers();
    config.kafka.topic_regex = format!("^ss3\\.t{run}\\..+");
    config.kafka.group_id = format!("g-{run}");
    config.kafka.publish_topics =
        crate::common::kafka::one_topic(&format!("integration.t{run}.webhooks"));
    config.worker.time_scale = 1.0;
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-c", &receiver.url(), &["*"]).await;

    proxy.cut_next_commit(cut);
    let p = producer();
    let events: Vec<Value> = (0..EVENTS)
        .map(|n| event("order.placed", "store-c", json!({"n": n})))
        .collect();
    let mut last = 0;
    for e in &events {
        last = produce(&p, &topic, "k", e.to_string().as_bytes()).await;
    }
    tokio::time::timeout(WAIT, proxy.wait_for_cut())
        .await
        .expect("the proxy cut a batch's COMMIT");

    let mut seen = HashSet::new();
    for _ in 0..EVENTS {
        let got = receiver.next(WAIT).await;
        let body: Value = serde_json::from_slice(&got.body).expect("json");
        assert!(
            seen.insert(body["eventId"].as_str().expect("id").to_owned()),
            "delivered twice: {body}"
        );
    }
    let sent: HashSet<String> = events
        .iter()
        .map(|e| e["eventId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(seen, sent, "every event delivered");
    receiver.expect_silence(Duration::from_millis(500)).await;

    let pool = PgPool::connect(&direct).await.expect("direct connection");
    for (sql, want) in [
        ("SELECT count(*) FROM ingested_events", EVENTS as i64),
        ("SELECT count(*) FROM webhook_deliveries", EVENTS as i64),
        (
            "SELECT count(DISTINCT event_id) FROM webhook_deliveries",
            EVENTS as i64,
        ),
    ] {
        let got: i64 = sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(got, want, "{sql}");
    }
    let next: i64 = sqlx::query_scalar("SELECT next_offset FROM kafka_offsets WHERE topic = $1")
        .bind(&topic)
        .fetch_one(&pool)
        .await
        .expect("stored offset");
    assert_eq!(next, last + 1);
    let metrics = &app.app.state().metrics;
    assert_eq!(
        metrics.events_duplicate.get(),
        0,
        "no message written twice: the stored offsets said what the lost commit had done"
    );
    assert_eq!(proxy.cuts(), 1);
}

/// Catches: a batch whose COMMIT succeeded on the server but failed on the client being written again (duplicates)
/// or taken as lost and skipped.
#[tokio::test]
async fn a_batch_committed_on_the_server_but_failed_on_the_client_is_neither_lost_nor_duplicated() {
    cut_one_batch_commit_and_check_every_event_arrives_once(Cut::AfterCommit).await;
}

/// Catches: a batch whose COMMIT never reached the server being assumed written (its events lost).
#[tokio::test]
async fn a_batch_whose_commit_never_reached_the_server_is_written_again_and_not_lost() {
    cut_one_batch_commit_and_check_every_event_arrives_once(Cut::BeforeCommit).await;
}
