//! `POST /events`: the same fan-out as Kafka ingest, for operators, tests and set-ups without Kafka.

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tracing::Instrument;
use workflows::EventEnvelope;
use workflows::ids::{ConnectorJobId, DeliveryId, EventId};

use super::auth::OperatorAuth;
use super::code::ProblemCode;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::{AppState, Tag};
use crate::db::events::{EventSource, Ingested, list_quarantine};

/// A span in the caller's trace, when it sent a `traceparent` and traces are exported (else a span that does
/// nothing for tracing): the event's own span is its child.
fn caller_trace(traceparent: Option<String>, tracestate: Option<String>) -> tracing::Span {
    let Some(traceparent) = traceparent else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!("POST /events", otel.kind = "server");
    jobs::trace::continue_caller(&span, &traceparent, tracestate.as_deref());
    span
}

/// What ingesting the event did.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct IngestResult {
    /// The event's id, as the envelope gave it.
    pub event_id: EventId,
    /// False when this event id had been ingested before (nothing was done).
    pub accepted: bool,
    /// The webhook deliveries created (one per matching active subscription).
    pub delivery_ids: Vec<DeliveryId>,
    /// The connector jobs created (one per matching active connector).
    pub connector_job_ids: Vec<ConnectorJobId>,
}

/// A quarantined Kafka message.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct QuarantinedMessage {
    /// The row's sequence number (newer rows have larger ones).
    pub quarantine_id: i64,
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Why it was refused: the parser's code (`event_not_object`, `nul_character`, …) or the database's
    /// (`data_exception`, `constraint_violation`, …).
    pub reason_code: String,
    /// Why it was refused, for humans.
    pub reason: String,
    /// Raw payload, lossily decoded as UTF-8.
    pub payload: Option<String>,
    /// When it was quarantined.
    pub received_at: chrono::DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum Ingest {
    /// New event: fanned out.
    #[oai(status = 202)]
    Accepted(Json<IngestResult>),
    /// Seen before: nothing done.
    #[oai(status = 200)]
    Duplicate(Json<IngestResult>),
}

/// The events resource.
pub struct EventsApi;

#[OpenApi(tag = "Tag::Events")]
impl EventsApi {
    /// Ingest one domain event (the envelope documented in the README).
    #[oai(path = "/events", method = "post")]
    pub async fn ingest(
        &self,
        _auth: OperatorAuth,
        state: Data<&AppState>,
        body: Json<serde_json::Value>,
        /// W3C trace context: the event's fan-out continues the caller's trace (README, "Tracing").
        #[oai(name = "traceparent")]
        traceparent: Header<Option<String>>,
        /// W3C trace state, with `traceparent`.
        #[oai(name = "tracestate")]
        tracestate: Header<Option<String>>,
    ) -> Result<Ingest, Problems<{ OPERATOR_CALLER | JSON_BODY | INVALID }>> {
        // Same parser as Kafka ingest, so both paths accept and refuse exactly the same envelopes.
        let bytes = serde_json::to_vec(&body.0).map_err(|e| ApiError::Internal(e.into()))?;
        let event = EventEnvelope::parse(&bytes, state.max_event_bytes, Utc::now())
            .map_err(|e| ApiError::Invalid(ProblemCode::from(&e), e.to_string()))?;
        let event_id = event.event_id;
        let ingested = state
            .ingestor
            .ingest_one(event, EventSource::Http, None)
            .instrument(caller_trace(traceparent.0, tracestate.0))
            .await
            .map_err(ApiError::from)?;
        Ok(match ingested {
            Ingested::New {
                deliveries,
                connector_jobs,
            } => Ingest::Accepted(Json(IngestResult {
                event_id,
                accepted: true,
                delivery_ids: deliveries,
                connector_job_ids: connector_jobs,
            })),
            Ingested::Duplicate => Ingest::Duplicate(Json(IngestResult {
                event_id,
                accepted: false,
                delivery_ids: vec![],
                connector_job_ids: vec![],
            })),
        })
    }

    /// The most recent quarantined Kafka messages.
    #[oai(path = "/quarantine", method = "get")]
    pub async fn quarantine(
        &self,
        _auth: OperatorAuth,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<QuarantinedMessage>>, Problems<OPERATOR_CALLER>> {
        let rows = list_quarantine(&state.pool, 100)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(
            rows.into_iter()
                .map(|r| QuarantinedMessage {
                    quarantine_id: r.quarantine_id,
                    topic: r.kafka_topic,
                    partition: r.kafka_partition,
                    offset: r.kafka_offset,
                    reason_code: r.reason_code,
                    reason: r.reason,
                    payload: r.payload.map(|p| String::from_utf8_lossy(&p).into_owned()),
                    received_at: r.received_at,
                })
                .collect(),
        ))
    }
}
