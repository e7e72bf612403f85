//! Kafka helpers: the broker comes from the test script (tansu on loopback).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use uuid::Uuid;

/// The broker the test script started. Kafka tests fail (never skip) without it.
pub fn brokers() -> String {
    std::env::var("SS3_TEST_KAFKA_BROKERS").expect(
        "SS3_TEST_KAFKA_BROKERS is not set: run the tests with scripts/test.sh, which starts tansu",
    )
}

/// A topic name unique to this test, under the `ss3.` prefix the service consumes.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}.{}", Uuid::new_v4().simple())
}

pub async fn create_topics(topics: &[String]) {
    integration_service::ingest::kafka::create_topics(&brokers(), topics, 2)
        .await
        .expect("create topics");
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produce raw bytes to partition 0 and return the offset.
pub async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> i64 {
    let delivered = producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    delivered.offset
}

/// Read messages of `topic` from the beginning until `want` have arrived (or fail after `within`).
pub async fn read(topic: &str, want: usize, within: Duration) -> Vec<Value> {
    read_from(&brokers(), topic, want, within).await
}

/// `read` against a given broker.
pub async fn read_from(brokers: &str, topic: &str, want: usize, within: Duration) -> Vec<Value> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(msg)) => out.push(
                serde_json::from_slice(msg.payload().unwrap_or_default()).expect("published JSON"),
            ),
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => panic!("only {} of {want} messages on {topic} in time", out.len()),
        }
    }
    out
}

/// `kafka.publish_topics` sending every event this service publishes to one topic (a test's own).
pub fn one_topic(topic: &str) -> std::collections::BTreeMap<String, String> {
    jobs::queue::effects::PUBLISHED
        .iter()
        .map(|t| ((*t).to_owned(), topic.to_owned()))
        .collect()
}

/// `SS3_KAFKA__PUBLISH_TOPICS` sending every event this service publishes to `topic` (a process test's own).
pub fn publish_topics_env(topic: &str) -> String {
    format!(
        "{{{}}}",
        jobs::queue::effects::PUBLISHED
            .map(|t| format!("\"{t}\"=\"{topic}\""))
            .join(",")
    )
}
