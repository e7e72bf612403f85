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

    /// Publish one batch of unpublished rows. Returns how many were published.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let rows = outbox::claim(&self.pool, 500, LEASE_SECS).await?;
        let sends = rows.iter().map(|row| {
            let payload = row.payload.to_string();
            let producer = &self.producer;
            async move {
                let record = FutureRecord::to(&row.topic)
                    .key(&row.message_key)
                    .payload(&payload);
                producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|_| row.outbox_id)
                    .map_err(|(e, _)| e)
            }
        });
        let results = futures::future::join_all(sends).await;
        let mut published = Vec::new();
        for result in results {
            match result {
                Ok(id) => published.push(id),
                Err(e) => {
                    tracing::warn!(error = %e, "publish failed; the row will be retried after its lease")
                }
            }
        }
        outbox::mark_published(&self.pool, &published).await?;
        self.metrics.published.inc_by(published.len() as u64);
        Ok(published.len())
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
