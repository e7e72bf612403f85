//! Ingest: domain events → delivery rows and their jobs, one Postgres transaction per batch of messages.

mod batch;
mod http;
pub mod kafka;
mod quiet;
mod resume;
mod topics;
mod trace_headers;

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use sqlx::{PgConnection, PgPool};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use workflows::{EventEnvelope, RejectReason};

use crate::db::events::{EventSource, Ingested, NewJobs, Quarantined};
use crate::db::offsets;
use crate::metrics::Metrics;
use jobs::queue::{self, announce::Announcer, claim::ClaimedJob};
use jobs::worker::{Handoff, Known, Reservation};

pub use batch::BatchError;
pub use http::HttpIngest;

/// One Kafka message as it arrived (where it sits and its raw bytes, kept for quarantine) and what the
/// envelope parser made of it.
pub struct Incoming<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The raw key bytes, if any.
    pub key: Option<&'a [u8]>,
    /// The raw value bytes (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
    /// The parsed event, or why the parser refused it (the message is then quarantined with that reason).
    pub parsed: Result<EventEnvelope, RejectReason>,
    /// The producer's span, from the message's `traceparent` header (only when traces are exported).
    pub trace_parent: Option<opentelemetry::Context>,
}

impl Incoming<'_> {
    /// The span of ingesting this message's `event`, in the producer's trace when the message carried one.
    fn span(&self, event: &EventEnvelope) -> tracing::Span {
        let span = event_span(event, "kafka");
        span.record("messaging.destination.name", self.topic);
        span.record("messaging.kafka.offset", self.offset);
        if let Some(parent) = &self.trace_parent {
            // The batch it came in stays reachable from the producer's trace.
            span.add_link(
                tracing::Span::current()
                    .context()
                    .span()
                    .span_context()
                    .clone(),
            );
            let _ = span.set_parent(parent.clone());
        }
        span
    }

    fn source(&self) -> EventSource {
        EventSource::Kafka {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// This message as a quarantine row with `reason_code` (stable) and `reason` (for humans).
    fn quarantined<'s>(&'s self, reason_code: &'s str, reason: String) -> Quarantined<'s> {
        Quarantined {
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key,
            payload: self.payload,
            reason_code,
            reason,
        }
    }
}

/// The span of ingesting one event (its fan-out), a child of the span entered unless given another parent.
fn event_span(event: &EventEnvelope, source: &'static str) -> tracing::Span {
    tracing::info_span!(
        "ingest event",
        event_id = %event.event_id,
        event_type = event.event_type.as_str(),
        store_id = event.store_id.as_str(),
        source,
        messaging.destination.name = tracing::field::Empty,
        messaging.kafka.offset = tracing::field::Empty,
    )
}

/// The next offset of each partition a Kafka batch touched.
#[derive(Debug, Clone, Default)]
pub struct OffsetUpdate {
    /// Consumer group.
    pub group: String,
    /// Topics (parallel to `partitions` and `next`).
    pub topics: Vec<String>,
    /// The Kafka partitions whose messages this batch holds (their offsets are stored with it).
    pub partitions: Vec<i32>,
    /// Next offsets.
    pub next: Vec<i64>,
}

/// Fans events out to webhook subscriptions.
#[derive(Clone)]
pub struct Ingestor {
    pool: PgPool,
    metrics: Arc<Metrics>,
    /// Wakes workers after each commit that queued jobs it did not hand off (ingest transactions send no NOTIFY of
    /// their own).
    announcer: Announcer,
    /// This process's worker, which takes the jobs it may as they are queued (`None`: every job is claimed).
    handoff: Option<Handoff>,
}

/// Jobs queued in an ingest transaction: those handed to this process's worker, and whether any wait for a claim.
#[must_use = "call Ingestor::committed after the commit, or drop it if the transaction rolled back"]
struct Queued {
    handed: Option<(Reservation, Vec<ClaimedJob>, Known)>,
    waiting: bool,
}

impl Ingestor {
    /// An ingestor writing to `pool`, handing the jobs it queues to `handoff`'s worker when it runs.
    pub fn new(pool: PgPool, metrics: Arc<Metrics>, handoff: Option<Handoff>) -> Self {
        let announcer = Announcer::new(pool.clone());
        Self {
            pool,
            metrics,
            announcer,
            handoff,
        }
    }

    /// Whether the fan-out should answer its deliveries as the worker sends them: only while a worker of this
    /// process takes jobs handed off (elsewhere the body would be read back for nothing).
    fn sendable(&self) -> bool {
        self.handoff.as_ref().is_some_and(Handoff::connected)
    }

    /// Queue `jobs`, all due now, in the ingest transaction `conn`: those this process's worker may take are written
    /// claimed by it (`jobs::queue::push`), the rest wait for a claim.
    async fn queue(&self, conn: &mut PgConnection, new: NewJobs) -> Result<Queued, sqlx::Error> {
        let due = batch::due_now(new.jobs);
        let count = due.len();
        let reservation = self.handoff.as_ref().and_then(|h| h.reserve(count));
        let taker = reservation.as_ref().map(Reservation::taker);
        let taken = queue::push::push_taking(conn, due, taker).await?;
        Ok(Queued {
            waiting: taken.len() < count,
            handed: reservation.map(|r| (r, taken, new.known)),
        })
    }

    /// After the ingest transaction committed: the worker runs what it took; a NOTIFY wakes a worker for the rest.
    fn committed(&self, queued: Queued) {
        if let Some((reservation, taken, known)) = queued.handed {
            self.metrics.jobs_handed_off.inc_by(taken.len() as u64);
            reservation.start(taken, known);
        }
        if queued.waiting {
            self.announcer.announce();
        }
    }

    /// Where ingest must resume on these partitions, per Postgres.
    pub async fn resume_points(
        &self,
        group: &str,
        topics: Vec<String>,
        partitions: Vec<i32>,
    ) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        offsets::next_offsets(&mut conn, group, &topics, &partitions).await
    }

    fn count(&self, ingested: &Ingested) {
        let counter = match ingested {
            Ingested::Duplicate => &self.metrics.events_duplicate,
            Ingested::New { .. } => &self.metrics.events_ingested,
        };
        counter.inc();
    }
}
