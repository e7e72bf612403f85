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

    /// Publish one batch of unpublished rows (each row all of its events, one Kafka record each), and delete the rows
    /// whose every record was acknowledged. The rows stay locked by this relay's transaction while it publishes them
    /// (other relays skip them), so taking them writes nothing and a published row costs one delete: a row is
    /// written twice in all (its insert, its delete) instead of four times (insert, claim, mark, retention's
    /// delete). A row not published (broker down, a record refused) is left as it was and sent whole again by the
    /// next pass after a back-off, at-least-once; so is every row of a relay that dies before its commit. Returns how many events
    /// were published.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = outbox::lock_unpublished(&mut tx, ROWS_PER_BATCH).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let sends = rows.iter().map(|row| self.publish_row(row));
        let results = futures::future::join_all(sends).await;
        let (mut published, mut events, mut failed) = (Vec::new(), 0, None);
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    published.push(row.outbox_id);
                    events += row.messages.len();
                }
                Err(e) => failed = Some(e),
            }
        }
        outbox::delete_published(&mut tx, &published).await?;
        tx.commit().await?;
        self.metrics.published.inc_by(events as u64);
        match failed {
            // The relay backs off before sending the rest again.
            Some(e) => Err(anyhow::anyhow!("publishing an outbox row failed: {e}")),
            None => Ok(events),
        }
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
