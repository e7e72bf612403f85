//! The ingest role: a Kafka consumer-group member. Offsets are committed only after the Postgres
//! transaction holding the batch has committed; redelivered messages are no-ops (unique event ids).

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use workflows::EventEnvelope;

use super::{Incoming, Ingestor};
use crate::config::KafkaConfig;
use crate::db::events::{EventSource, Quarantined};
use crate::worker::Backoff;

/// Build the consumer and subscribe to the configured regex and topics.
pub fn consumer(config: &KafkaConfig) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string())
        // Pick up topics created after start-up that match the regex.
        .set("topic.metadata.refresh.interval.ms", "10000")
        .create()?;
    let mut topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    let regex = config.topic_regex.trim();
    if !regex.is_empty() {
        // librdkafka treats a subscription starting with ^ as a regex.
        topics.push(regex);
    }
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

fn to_incoming(msg: &OwnedMessage, max_bytes: usize) -> Incoming<'_> {
    let payload = msg.payload().unwrap_or_default();
    match EventEnvelope::parse(payload, max_bytes, Utc::now()) {
        Ok(event) => Incoming::Event(
            event,
            EventSource::Kafka {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
            },
        ),
        Err(reason) => Incoming::Poison(Quarantined {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            // Oversized payloads are kept too (bounded by the broker's own message limit): nothing is dropped.
            payload: msg.payload(),
            reason_code: reason.code(),
            reason: reason.to_string(),
        }),
    }
}

/// The next offset to commit per partition: one past the highest offset in the batch
/// (a batch is a contiguous run of each partition's stream, so every offset below it is done).
fn commit_list(batch: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for msg in batch {
        let entry = next.entry((msg.topic(), msg.partition())).or_insert(0);
        *entry = (*entry).max(msg.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(list)
}

/// Consume until `shutdown`: gather a batch, write it in one transaction (retrying until it commits), then commit offsets.
pub async fn run(
    consumer: StreamConsumer,
    ingestor: Ingestor,
    config: KafkaConfig,
    shutdown: CancellationToken,
) {
    let linger = Duration::from_millis(config.batch_linger_ms);
    let mut backoff = Backoff::default();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = consumer.recv() => msg,
        };
        let first = match first {
            Ok(msg) => msg.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive failed; backing off");
                if backoff.wait(&shutdown).await.is_err() {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < config.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(msg)) => batch.push(msg.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka receive failed mid-batch");
                    break;
                }
                Err(_) => break,
            }
        }
        let incoming: Vec<Incoming<'_>> = batch
            .iter()
            .map(|m| to_incoming(m, config.max_message_bytes))
            .collect();
        let mut write_backoff = Backoff::default();
        loop {
            match ingestor.ingest_batch(&incoming).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), messages = batch.len(), "cannot write batch; retrying before committing offsets");
                    if write_backoff.wait(&shutdown).await.is_err() {
                        // Not committed: another member (or our successor) will read these messages again.
                        tracing::info!(
                            "shutting down with an unwritten batch; its offsets stay uncommitted"
                        );
                        return;
                    }
                }
            }
        }
        match commit_list(&batch) {
            Ok(list) => {
                // Async: a lost commit only means a redelivery, which is a no-op.
                if let Err(e) = consumer.commit(&list, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; messages will be redelivered and ignored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build offset list"),
        }
    }
    // Commit synchronously what was consumed before leaving the group.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit skipped");
    }
    tracing::info!("ingest stopped");
}

/// Create `topics` if missing (tansu does not auto-create topics).
pub async fn create_topics(
    brokers: &str,
    topics: &[String],
    partitions: i32,
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}
