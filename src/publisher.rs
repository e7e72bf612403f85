//! The outbox relay: publishes `webhook.delivered` / `webhook.dead_lettered` to Kafka after they were committed.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::outbox;
use crate::metrics::Metrics;
use jobs::backoff::Backoff;

/// How long a claimed batch is ours before another relay may take it.
const LEASE_SECS: i64 = 30;

/// Outbox rows claimed at once (each carries the events of one flush for one topic).
const ROWS_PER_BATCH: i64 = 50;

/// Moves outbox rows to Kafka.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
}

impl Relay {
    /// A relay producing to `brokers`.
    pub fn new(pool: PgPool, brokers: &str, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            // Keep trying while the broker is unreachable; the row stays unpublished until acknowledged.
            .set("message.timeout.ms", "20000")
            .create()?;
        Ok(Self {
            pool,
            producer,
            metrics,
        })
    }

    /// Publish one batch of unpublished rows (each row all of its events, one Kafka record each). A row is marked
    /// published only when every one of its records was acknowledged; otherwise the whole row is sent again after
    /// its lease (at-least-once). Returns how many events were published.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let rows = outbox::claim(&self.pool, ROWS_PER_BATCH, LEASE_SECS).await?;
        let sends = rows.iter().map(|row| self.publish_row(row));
        let results = futures::future::join_all(sends).await;
        let mut published = Vec::new();
        let mut events = 0;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    published.push(row.outbox_id);
                    events += row.messages.len();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publish failed; the row will be retried after its lease")
                }
            }
        }
        outbox::mark_published(&self.pool, &published).await?;
        self.metrics.published.inc_by(events as u64);
        Ok(events)
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
