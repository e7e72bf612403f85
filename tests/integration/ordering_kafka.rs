//! Ordered delivery through Kafka: events keyed by order id, ingested from a two-partition topic by one process and
//! delivered by two, reach the receiver in each order's produce order, one at a time.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde_json::json;
use uuid::Uuid;

use crate::common::kafka::{brokers, create_topics, producer, publish_topics_env};
use crate::common::process::{ServiceProcess, cluster_env, wait_healthy};
use crate::common::{ADMIN_TOKEN, Api, TestDb, event};
use crate::ordering::{Arrival, assert_in_order, ordered_receiver};

const WAIT: Duration = Duration::from_secs(60);
const KEYS: usize = 8;
const PER_KEY: u64 = 6;

/// Catches: an order's events delivered out of their Kafka order or side by side when ingest and delivery run in
/// separate processes (lines locked by ingest, moved on by either worker).
#[tokio::test]
async fn events_keyed_by_order_reach_the_receiver_in_produce_order_across_processes() {
    let run = Uuid::new_v4().simple().to_string();
    let (topic, publish) = (format!("ss3.k{run}.orders"), format!("integration.k{run}"));
    create_topics(&[topic.clone(), publish.clone()]).await;
    let db = TestDb::create().await;
    let env = cluster_env(
        &db.url,
        &[
            ("SS3_KAFKA__BROKERS", &brokers()),
            ("SS3_KAFKA__TOPIC_REGEX", &format!("^ss3\\.k{run}\\..+")),
            ("SS3_KAFKA__GROUP_ID", &format!("g-{run}")),
            ("SS3_KAFKA__PUBLISH_TOPICS", &publish_topics_env(&publish)),
            ("SS3_WORKER__POLL_INTERVAL_MS", "50"),
        ],
    );
    let ingest = ServiceProcess::spawn("api,ingest,worker", &env, "ordered-kafka-1");
    let _worker = ServiceProcess::spawn("worker", &env, "ordered-kafka-2");
    let api_url = ingest.api_url(WAIT).await;
    wait_healthy(&format!("{api_url}/health"), WAIT).await;
    let (target, shared, mut arrivals) = ordered_receiver("none").await;
    let api = Api::new(&api_url, ADMIN_TOKEN);
    let created = api
        .create_subscription("store-k", &target, &["order.*"])
        .await;
    let changes = json!({"ordering": {"key": "$.data.orderId"}});
    api.update_subscription("store-k", created.subscription.subscription_id, &changes)
        .await;

    let producer = producer();
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let order = format!("k{k}");
            let e = event(
                "order.updated",
                "store-k",
                json!({"orderId": order, "seq": seq}),
            );
            producer
                .send(
                    FutureRecord::to(&topic).key(&order).payload(&e.to_string()),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
        }
    }

    let mut log: Vec<Arrival> = Vec::new();
    let total = KEYS * usize::try_from(PER_KEY).unwrap_or_default();
    while log.len() < total {
        let a = tokio::time::timeout(WAIT, arrivals.recv())
            .await
            .expect("deliveries in time")
            .expect("receiver open");
        log.push(a);
    }
    let keys = (0..KEYS)
        .map(|k| (format!("k{k}"), (0..PER_KEY).collect()))
        .collect();
    assert_in_order(&log, &shared, keys);
}
