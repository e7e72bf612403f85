//! Kafka unreachable for a while (tansu frozen with SIGSTOP: a restarted in-memory tansu would start empty):
//! ingest and the outbox relay wait, then resume with nothing lost.

use std::collections::HashSet;
use std::time::Duration;

use integration_service::startup::Roles;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::broker::OwnBroker;
use crate::common::{Receiver, TestApp, TestDb, event, test_config};

async fn produce(producer: &FutureProducer, topic: &str, events: &[Value]) {
    for e in events {
        producer
            .send(
                FutureRecord::to(topic).key("k").payload(&e.to_string()),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// Catches: ingest or the publisher giving up, losing events, or crashing while the broker is unreachable.
#[tokio::test]
async fn while_the_broker_is_frozen_ingest_and_publishing_wait_then_resume_with_nothing_lost() {
    let broker = OwnBroker::start().await;
    let topic = format!("ss3.b{}.orders", Uuid::new_v4().simple());
    let publish = format!("integration.b{}", Uuid::new_v4().simple());
    integration_service::ingest::kafka::create_topics(
        &broker.addr,
        &[topic.clone(), publish.clone()],
        2,
    )
    .await
    .expect("topics");
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.kafka.brokers = broker.addr.clone();
    config.kafka.topics = vec![topic.clone()];
    config.kafka.topic_regex = String::new();
    config.kafka.publish_topics = crate::common::kafka::one_topic(&publish);
    config.worker.time_scale = 1.0;
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-b", &receiver.url(), &["*"]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");

    let before: Vec<Value> = (0..50)
        .map(|n| event("order.placed", "store-b", json!({"n": n})))
        .collect();
    produce(&producer, &topic, &before).await;
    for _ in &before {
        receiver.next(Duration::from_secs(30)).await;
    }

    broker.freeze();
    // Meanwhile events keep arriving over HTTP; their webhook.delivered events wait in the outbox.
    for n in 0..20 {
        assert_eq!(
            app.post_event(&event("order.placed", "store-b", json!({"http": n})))
                .await
                .status(),
            202
        );
    }
    for _ in 0..20 {
        receiver.next(Duration::from_secs(30)).await;
    }
    // The behaviour under test: for a while with Kafka down, nothing is published (a silence, so a fixed wait).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        app.count("SELECT count(*) FROM outbox_messages").await >= 20,
        "the relay waits while Kafka is down"
    );
    broker.thaw();

    let after: Vec<Value> = (0..50)
        .map(|n| event("order.placed", "store-b", json!({"after": n})))
        .collect();
    produce(&producer, &topic, &after).await;
    for _ in &after {
        receiver.next(Duration::from_secs(60)).await;
    }
    // The receiver answers before the worker records the outcome: wait for the rows.
    let mut delivered = 0;
    for _ in 0..100 {
        delivered = app
            .count("SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")
            .await;
        if delivered == 120 {
            break;
        }
        crate::common::wait::pause().await;
    }
    assert_eq!(delivered, 120);
    let mut backlog = i64::MAX;
    for _ in 0..600 {
        backlog = app.count("SELECT count(*) FROM outbox_messages").await;
        if backlog == 0 {
            break;
        }
        crate::common::wait::pause().await;
    }
    assert_eq!(
        backlog, 0,
        "every webhook.delivered was published once Kafka was back"
    );
    let published =
        crate::common::kafka::read_from(&broker.addr, &publish, 120, Duration::from_secs(30)).await;
    let ids: HashSet<String> = published
        .iter()
        .map(|m| {
            m["data"]["deliveryId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        120,
        "at least once: every delivery's event is on the topic"
    );
}
