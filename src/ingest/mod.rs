//! Ingest: domain events → delivery rows and their jobs, one Postgres transaction per batch of messages.

pub mod kafka;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use sqlx::PgPool;
use uuid::Uuid;
use workflows::EventEnvelope;

use crate::db::events::{self, EventSource, Ingested, Quarantined};
use crate::db::queue;
use crate::metrics::Metrics;

/// One incoming message, parsed or not.
pub enum Incoming<'a> {
    /// A valid event.
    Event(EventEnvelope, EventSource),
    /// A message that failed to parse: it is quarantined.
    Poison(Quarantined<'a>),
}

/// The next offset of each partition a Kafka batch touched.
#[derive(Debug, Clone, Default)]
pub struct OffsetUpdate {
    /// Consumer group.
    pub group: String,
    /// Topics (parallel to `partitions` and `next`).
    pub topics: Vec<String>,
    /// Partitions.
    pub partitions: Vec<i32>,
    /// Next offsets.
    pub next: Vec<i64>,
}

/// Fans events out to webhook subscriptions.
#[derive(Clone)]
pub struct Ingestor {
    pool: PgPool,
    metrics: Arc<Metrics>,
}

impl Ingestor {
    /// An ingestor writing to `pool`.
    pub fn new(pool: PgPool, metrics: Arc<Metrics>) -> Self {
        Self { pool, metrics }
    }

    /// Where ingest must resume on these partitions, per Postgres.
    pub async fn resume_points(
        &self,
        group: &str,
        topics: Vec<String>,
        partitions: Vec<i32>,
    ) -> anyhow::Result<Vec<(String, i32, i64)>> {
        let mut conn = self.pool.acquire().await?;
        Ok(events::next_offsets(&mut conn, group, &topics, &partitions).await?)
    }

    /// Write a batch in ONE transaction: events with their deliveries and jobs, poison messages to quarantine,
    /// and (for Kafka) the next offset of each partition. Nothing is written unless everything is.
    pub async fn ingest_batch(
        &self,
        batch: &[Incoming<'_>],
        offsets: Option<&OffsetUpdate>,
    ) -> anyhow::Result<Vec<Ingested>> {
        let mut tx = self.pool.begin().await?;
        if let Some(o) = offsets {
            events::store_offsets(&mut tx, &o.group, &o.topics, &o.partitions, &o.next).await?;
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut jobs = Vec::new();
        for item in batch {
            match item {
                Incoming::Event(event, source) => {
                    let (ingested, new_jobs) =
                        events::fan_out(&mut tx, event, source, None).await?;
                    jobs.extend(new_jobs.into_iter().map(|j| (j, std::time::Duration::ZERO)));
                    results.push(ingested);
                }
                Incoming::Poison(q) => events::quarantine(&mut tx, q).await?,
            }
        }
        queue::push(&mut tx, jobs).await?;
        tx.commit().await?;
        for item in batch {
            if let Incoming::Poison(_) = item {
                self.metrics.messages_quarantined.fetch_add(1, Relaxed);
            }
        }
        for r in &results {
            self.count(r);
        }
        Ok(results)
    }

    fn count(&self, ingested: &Ingested) {
        let counter = match ingested {
            Ingested::Duplicate => &self.metrics.events_duplicate,
            Ingested::New { .. } => &self.metrics.events_ingested,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Ingest one event (HTTP); `only_subscription` restricts fan-out (the test endpoint).
    pub async fn ingest_one(
        &self,
        event: &EventEnvelope,
        source: EventSource,
        only_subscription: Option<Uuid>,
    ) -> anyhow::Result<Ingested> {
        let mut tx = self.pool.begin().await?;
        let (ingested, jobs) = events::fan_out(&mut tx, event, &source, only_subscription).await?;
        queue::push(
            &mut tx,
            jobs.into_iter()
                .map(|j| (j, std::time::Duration::ZERO))
                .collect(),
        )
        .await?;
        tx.commit().await?;
        self.count(&ingested);
        Ok(ingested)
    }
}
