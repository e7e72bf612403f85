//! The trace context a producer put in a Kafka message's headers (W3C `traceparent`, `tracestate`).

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use rdkafka::message::{Headers, OwnedHeaders};

/// The producer's span named by a message's W3C headers (`traceparent`, `tracestate`), when traces are exported
/// (without them the global propagator reads nothing).
pub(super) fn trace_parent(headers: &OwnedHeaders) -> Option<opentelemetry::Context> {
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&KafkaHeaders(headers)));
    cx.span().span_context().is_valid().then_some(cx)
}

/// A message's headers, for the propagator.
struct KafkaHeaders<'a>(&'a OwnedHeaders);

impl Extractor for KafkaHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}
