//! The ingest role: a Kafka consumer-group member. Offsets are committed only after the Postgres
//! transaction holding the batch has committed; redelivered messages are no-ops (unique event ids).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use workflows::EventEnvelope;

use super::quiet::{self, IngestContext, Partition, Quiet};
use super::resume::{plan, seek_back};
pub use super::topics::create_topics;
use super::trace_headers::trace_parent;
use super::{BatchError, Incoming, Ingestor, OffsetUpdate};
use crate::config::KafkaConfig;
use jobs::backoff::Backoff;

/// Build the consumer and subscribe to the configured regex and topics.
pub fn consumer(config: &KafkaConfig) -> anyhow::Result<StreamConsumer<IngestContext>> {
    let mut client = ClientConfig::new();
    if !config.group_instance_id.trim().is_empty() {
        client.set("group.instance.id", config.group_instance_id.trim());
    }
    let consumer: StreamConsumer<IngestContext> = client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "15000")
        .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string())
        // Pick up topics created after start-up that match the regex.
        .set("topic.metadata.refresh.interval.ms", "10000")
        .create_with_context(IngestContext::default())?;
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
    Incoming {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        // Oversized payloads are kept too (bounded by the broker's own message limit): nothing is dropped.
        payload: msg.payload(),
        parsed: EventEnvelope::parse(msg.payload().unwrap_or_default(), max_bytes, Utc::now()),
        trace_parent: msg.headers().and_then(trace_parent),
    }
}

/// Per partition of `messages`, the next offset: one past the highest.
fn next_offsets<'a>(
    messages: impl IntoIterator<Item = &'a OwnedMessage>,
) -> HashMap<(&'a str, i32), i64> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for msg in messages {
        let entry = next.entry((msg.topic(), msg.partition())).or_insert(0);
        *entry = (*entry).max(msg.offset() + 1);
    }
    next
}

/// The next offset to commit per partition: one past the highest offset in the batch
/// (a batch is a contiguous run of each partition's stream, so every offset below it is done).
fn commit_list(batch: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next_offsets(batch) {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(list)
}

/// Consume until `shutdown`: gather a batch, write it in one transaction (retrying until it commits), then commit
/// offsets to the broker.
pub async fn run(
    consumer: StreamConsumer<IngestContext>,
    ingestor: Ingestor,
    config: KafkaConfig,
    shutdown: CancellationToken,
) {
    let mut ingest = KafkaIngest {
        consumer,
        ingestor,
        config,
        seek_steps: HashMap::new(),
        quiet: Quiet::default(),
        next_check: tokio::time::Instant::now(),
    };
    while let Some(batch) = ingest.next_batch(&shutdown).await {
        let span = tracing::info_span!(
            "kafka batch",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.batch.message_count = batch.len(),
        );
        let written = ingest
            .write_until_stored(&batch, &shutdown)
            .instrument(span)
            .await;
        if written.is_err() {
            // Not committed: another member (or our successor) will read these messages again.
            tracing::info!("shutting down with an unwritten batch; its offsets stay uncommitted");
            return;
        }
        match commit_list(&batch) {
            // Async: a lost commit only means a redelivery, which is a no-op.
            Ok(list) => {
                if let Err(e) = ingest.consumer.commit(&list, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; messages will be redelivered and ignored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build offset list"),
        }
        if tokio::time::Instant::now() >= ingest.next_check {
            ingest.check_quiet().await;
        }
    }
    // Commit synchronously what was consumed before leaving the group.
    if let Err(e) = ingest.consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit skipped");
    }
    tracing::info!("ingest stopped");
}

/// Shutdown was requested while a batch was still unwritten.
struct ShuttingDown;

/// The consumer loop's state.
struct KafkaIngest {
    consumer: StreamConsumer<IngestContext>,
    ingestor: Ingestor,
    config: KafkaConfig,
    /// Per partition: how far before our stored offset the last seek went (see `seek_back`).
    seek_steps: HashMap<(String, i32), i64>,
    /// Partitions that gave nothing since they were assigned or sought (see `quiet`).
    quiet: Quiet,
    /// When `quiet` is next looked at.
    next_check: tokio::time::Instant,
}

impl KafkaIngest {
    /// Wait for a message, then gather more for up to `batch_linger_ms` (or `batch_max`); with 0, what the consumer
    /// already holds (`timeout_at` polls `recv` before it looks at the deadline, which the timer rounds up to its
    /// next millisecond, so what arrives within that joins too). `None` on shutdown.
    async fn next_batch(&mut self, shutdown: &CancellationToken) -> Option<Vec<OwnedMessage>> {
        let mut backoff = Backoff::default();
        let first = loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return None,
                msg = self.consumer.recv() => msg,
                () = tokio::time::sleep_until(self.next_check) => {
                    self.check_quiet().await;
                    continue;
                }
            };
            match received {
                Ok(msg) => break msg.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka receive failed; backing off");
                    backoff.wait(shutdown).await.ok()?;
                }
            }
        };
        let mut batch = vec![first];
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.batch_linger_ms);
        while batch.len() < self.config.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(msg)) => batch.push(msg.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka receive failed mid-batch");
                    break;
                }
                Err(_) => break,
            }
        }
        quiet::apply(
            &mut self.quiet,
            self.consumer.context().take(),
            Instant::now(),
        );
        for msg in &batch {
            self.quiet.heard(msg.topic(), msg.partition());
        }
        Some(batch)
    }

    /// Seek back the partitions quiet for `kafka.stall_check_ms` since they were assigned or sought (see `quiet`).
    async fn check_quiet(&mut self) {
        let after = Duration::from_millis(self.config.stall_check_ms.max(100));
        self.next_check = tokio::time::Instant::now() + after;
        // Partitions sought now are looked at again at the next check: their wait starts at this instant.
        let now = Instant::now();
        quiet::apply(&mut self.quiet, self.consumer.context().take(), now);
        let quiet = self.quiet.quiet_for(now, after);
        if quiet.is_empty() {
            return;
        }
        let (topics, partitions): (Vec<String>, Vec<i32>) = quiet.iter().cloned().unzip();
        let stored = match self
            .ingestor
            .resume_points(&self.config.group_id, topics, partitions)
            .await
        {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored offsets of quiet partitions");
                return;
            }
        };
        // Nothing stored: nothing was ingested from it, so the broker has no committed offset of ours either.
        let known: HashSet<Partition> = stored.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        for (topic, partition) in quiet.iter().filter(|p| !known.contains(*p)) {
            self.quiet.heard(topic, *partition);
        }
        for (topic, partition, next) in stored {
            let key = (topic, partition);
            let topic = key.0.as_str();
            if quiet::sought_far_enough(self.seek_steps.get(&key).copied(), next) {
                tracing::info!(
                    topic,
                    partition,
                    offset = next,
                    "a quiet partition gave nothing even sought back: taken as idle"
                );
                self.quiet.heard(topic, partition);
                self.seek_steps.remove(&key);
                continue;
            }
            let why = "gave nothing since it was assigned or sought";
            if let Err(e) = self.seek_before(topic, partition, next, why, now) {
                tracing::warn!(topic, partition, error = %e, "cannot seek a quiet partition");
            }
        }
    }

    /// Seek `partition` back before `next`, its stored offset (`seek_back`'s growing step), because it `why`, and
    /// watch it from `now`. `false` when seeking further back cannot help: the broker no longer has these offsets.
    fn seek_before(
        &mut self,
        topic: &str,
        partition: i32,
        next: i64,
        why: &str,
        now: Instant,
    ) -> anyhow::Result<bool> {
        let Some(target) = seek_back(&mut self.seek_steps, topic, partition, next) else {
            tracing::error!(
                %topic,
                partition,
                offset = next,
                why,
                "messages after our stored offset are gone from the broker"
            );
            return Ok(false);
        };
        tracing::warn!(%topic, partition, offset = next, target, why, "seeking back before our stored offset");
        self.consumer.seek(
            topic,
            partition,
            Offset::Offset(target),
            Duration::from_secs(5),
        )?;
        self.quiet.watch((topic.to_owned(), partition), now);
        Ok(true)
    }

    /// Write `batch` until Postgres holds it. Only infrastructure errors get here (a message Postgres refuses is
    /// quarantined by `ingest_batch`), so retrying with backoff ends when the database is back. `Err` on shutdown.
    async fn write_until_stored(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Result<(), ShuttingDown> {
        let mut backoff = Backoff::default();
        let mut outcome_unknown = false;
        loop {
            match self.write_once(batch, outcome_unknown).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Sticky: a later attempt failing otherwise does not make the lost commit's outcome known.
                    outcome_unknown |= log_write_failure(&e, batch.len());
                    if backoff.wait(shutdown).await.is_err() {
                        return Err(ShuttingDown);
                    }
                }
            }
        }
    }

    /// One attempt. It first re-reads where Postgres says each partition resumes, so after a commit whose outcome
    /// was unknown the messages it did store are skipped, and the ones it did not are written: never assumed.
    async fn write_once(
        &mut self,
        batch: &[OwnedMessage],
        after_unknown_commit: bool,
    ) -> anyhow::Result<()> {
        let positions: Vec<(String, i32, i64)> = batch
            .iter()
            .map(|m| (m.topic().to_owned(), m.partition(), m.offset()))
            .collect();
        let (topics, partitions): (Vec<String>, Vec<i32>) =
            positions.iter().map(|(t, p, _)| (t.clone(), *p)).unzip();
        let resume: HashMap<(String, i32), i64> = self
            .ingestor
            .resume_points(&self.config.group_id, topics, partitions)
            .await?
            .into_iter()
            .map(|(t, p, o)| ((t, p), o))
            .collect();
        let keep = self.keep_or_seek(&positions, &resume)?;
        if keep.is_empty() {
            if after_unknown_commit {
                tracing::info!(
                    messages = batch.len(),
                    "the batch whose commit outcome was unknown is stored"
                );
            }
            return Ok(());
        }
        let kept: Vec<&OwnedMessage> = keep.iter().map(|&i| &batch[i]).collect();
        let incoming: Vec<Incoming<'_>> = kept
            .iter()
            .map(|m| to_incoming(m, self.config.max_message_bytes))
            .collect();
        let update = offset_update(&self.config.group_id, &kept);
        self.ingestor.ingest_batch(&incoming, Some(&update)).await?;
        Ok(())
    }

    /// Indexes of the messages to write, per `plan`; partitions with a gap are sought back (see `seek_back`).
    fn keep_or_seek(
        &mut self,
        positions: &[(String, i32, i64)],
        resume: &HashMap<(String, i32), i64>,
    ) -> anyhow::Result<Vec<usize>> {
        let mut plan = plan(positions, resume);
        let gaps = std::mem::take(&mut plan.seek);
        // A partition that resumed at or before our stored offset is back on track.
        for (topic, partition, _) in positions {
            if !gaps.iter().any(|(t, p, _)| t == topic && p == partition) {
                self.seek_steps.remove(&(topic.clone(), *partition));
            }
        }
        for (topic, partition, offset) in gaps {
            if !self.seek_before(&topic, partition, offset, "resumed past it", Instant::now())? {
                // Accept the gap.
                plan.keep.extend(
                    positions
                        .iter()
                        .enumerate()
                        .filter(|(_, (t, p, _))| *t == topic && *p == partition)
                        .map(|(i, _)| i),
                );
            }
        }
        plan.keep.sort_unstable();
        Ok(plan.keep)
    }
}

/// Log why writing a batch of `messages` failed; whether the failure left its commit's outcome unknown.
fn log_write_failure(e: &anyhow::Error, messages: usize) -> bool {
    let error = format!("{e:#}");
    let unknown = matches!(
        e.downcast_ref::<BatchError>(),
        Some(BatchError::CommitUnknown(_))
    );
    if unknown {
        tracing::warn!(
            %error,
            messages,
            "batch commit outcome unknown; re-reading the stored offsets before writing again"
        );
    } else {
        tracing::warn!(
            %error,
            messages,
            "cannot write batch; retrying before committing offsets"
        );
    }
    unknown
}

/// The next offset per partition of the messages written: one past the highest.
fn offset_update(group: &str, kept: &[&OwnedMessage]) -> OffsetUpdate {
    let next = next_offsets(kept.iter().copied());
    let mut update = OffsetUpdate {
        group: group.to_owned(),
        ..OffsetUpdate::default()
    };
    for ((topic, partition), offset) in next {
        update.topics.push(topic.to_owned());
        update.partitions.push(partition);
        update.next.push(offset);
    }
    update
}
