//! The outbox relay: publishes `webhook.delivered` / `webhook.dead_lettered` to Kafka after they were committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::outbox;
use crate::metrics::Metrics;
use jobs::backoff::Backoff;

/// Outbox rows taken at once (each carries the events of one flush for one topic).
const ROWS_PER_BATCH: i64 = 50;

/// How long a publish may take before it counts as failed (the producer's `message.timeout.ms`): the relay's
/// transaction, holding its rows and a connection of the worker's pool, stays open at most about this long.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a row that failed while others were published waits before it is tried again (a record the broker
/// refuses, a topic it does not accept), so it does not hold back the rows behind it.
const HOLD_BACK: Duration = Duration::from_secs(30);

/// Moves outbox rows to Kafka.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    /// Nothing could be published last time: until the broker answers again, no rows are taken.
    broker_down: Arc<AtomicBool>,
    /// Rows that failed on their own, and until when they wait.
    held_back: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Relay {
    /// A relay producing to `brokers`.
    pub fn new(pool: PgPool, brokers: &str, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            // The producer retries within this; a row not acknowledged by then stays in the outbox for later.
            .set(
                "message.timeout.ms",
                PUBLISH_TIMEOUT.as_millis().to_string(),
            )
            .create()?;
        Ok(Self {
            pool,
            producer,
            metrics,
            broker_down: Arc::default(),
            held_back: Arc::default(),
        })
    }

    /// Publish one batch of unpublished rows (each row all of its events, one Kafka record each), and delete the rows
    /// whose every record was acknowledged. The rows stay locked by this relay's transaction while it publishes them
    /// (other relays skip them): taking them is a row lock (a WAL record, no new row version, no index entry), and
    /// a row is written twice in all, its insert and its delete, instead of four times (insert, claim, mark,
    /// retention's delete). A row not published is left as it was and sent whole again later (at-least-once; so is
    /// every row of a relay that dies before its commit):
    /// - when nothing could be published, the broker is taken to be down: the relay backs off, and takes no rows
    ///   until the broker answers a metadata request, so an outage does not keep a transaction and a connection of
    ///   the worker's pool busy;
    /// - a row that failed while others were published waits [`HOLD_BACK`], and the rows behind it go on.
    ///
    /// Returns how many events were published.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        if self.broker_down.load(Ordering::Relaxed) {
            self.broker_answers().await?;
            self.broker_down.store(false, Ordering::Relaxed);
        }
        let held_back = self.held_back();
        let mut tx = self.pool.begin().await?;
        let rows = outbox::lock_unpublished(&mut tx, ROWS_PER_BATCH, &held_back).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let sends = rows.iter().map(|row| self.publish_row(row));
        let results = futures::future::join_all(sends).await;
        let (mut published, mut events, mut failed) = (Vec::new(), 0, Vec::new());
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    published.push(row.outbox_id);
                    events += row.messages.len();
                }
                Err(e) => {
                    tracing::warn!(outbox_id = row.outbox_id, topic = %row.topic, error = %e, "publishing an outbox row failed");
                    failed.push(row.outbox_id);
                }
            }
        }
        outbox::delete_published(&mut tx, &published).await?;
        tx.commit().await?;
        self.metrics.published.inc_by(events as u64);
        if failed.is_empty() {
            return Ok(events);
        }
        if published.is_empty() {
            self.broker_down.store(true, Ordering::Relaxed);
            anyhow::bail!("no outbox row could be published; waiting for the broker");
        }
        let until = Instant::now() + HOLD_BACK;
        let mut held = self.held_back.lock().unwrap_or_else(|p| p.into_inner());
        held.extend(failed.into_iter().map(|id| (id, until)));
        Ok(events)
    }

    /// The rows still waiting after failing on their own (forgetting those whose wait is over).
    fn held_back(&self) -> Vec<i64> {
        let mut held = self.held_back.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        held.retain(|_, until| *until > now);
        held.keys().copied().collect()
    }

    /// Whether the broker answers a metadata request (a blocking call of librdkafka, off the runtime's threads).
    async fn broker_answers(&self) -> anyhow::Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(drop)
        })
        .await??;
        Ok(())
    }

    /// Send every event of `row`; the first failure is the row's.
    async fn publish_row(&self, row: &outbox::OutboxRow) -> Result<(), rdkafka::error::KafkaError> {
        let sends = row.messages.iter().map(|m| {
            let payload = m.value.to_string();
            async move {
                let record = FutureRecord::to(&row.topic).key(&m.key).payload(&payload);
                self.producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }
        });
        futures::future::join_all(sends).await.into_iter().collect()
    }

    /// Relay until `shutdown`.
    pub async fn run(self, poll: Duration, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            match self.run_once().await {
                Ok(0) => {
                    backoff.reset();
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox relay failed; backing off");
                    let _ = backoff.wait(&shutdown).await;
                }
            }
        }
    }
}
