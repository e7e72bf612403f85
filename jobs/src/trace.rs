//! W3C trace context across the queue: an event's fan-out stores the context of its span with each row it creates
//! ([`current`]), and every attempt of that row continues the event's trace from it ([`continue_from`]); an
//! outgoing request carries the context of the span that sends it ([`inject`]).
//!
//! The text format is the W3C headers themselves: `traceparent`, then `tracestate` on a second line when there is
//! one (a header value never holds a line break). With tracing not exported (no OpenTelemetry layer) there is no
//! context: nothing is stored, nothing allocated.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, global};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The context of the span now entered, as stored with a row (`None`: not traced, or not sampled).
pub fn current() -> Option<String> {
    Context::map_current(|cx| {
        if !cx.span().span_context().is_sampled() {
            return None;
        }
        let mut headers = Headers::default();
        global::get_text_map_propagator(|p| p.inject_context(cx, &mut headers));
        let mut text = headers.traceparent?;
        if let Some(state) = headers.tracestate.filter(|s| !s.is_empty()) {
            text.push('\n');
            text.push_str(&state);
        }
        Some(text)
    })
}

/// The remote parent a stored context names (an empty context when it is malformed).
pub fn parent(stored: &str) -> Context {
    let mut lines = stored.splitn(2, '\n');
    remote(lines.next().unwrap_or_default(), lines.next())
}

/// The remote parent W3C headers name (an empty context when they are malformed).
fn remote(traceparent: &str, tracestate: Option<&str>) -> Context {
    let headers = Headers {
        traceparent: Some(traceparent.to_owned()),
        tracestate: tracestate.map(str::to_owned),
    };
    global::get_text_map_propagator(|p| p.extract(&headers))
}

/// Make `span` (not yet entered) a child of the stored context, when there is one.
pub fn continue_from(span: &tracing::Span, stored: Option<&str>) {
    if let Some(stored) = stored {
        set_parent(span, parent(stored));
    }
}

/// Make `span` (not yet entered) a child of the caller that sent these W3C headers (`POST /events`).
pub fn continue_caller(span: &tracing::Span, traceparent: &str, tracestate: Option<&str>) {
    set_parent(span, remote(traceparent, tracestate));
}

fn set_parent(span: &tracing::Span, parent: Context) {
    // Fails only when tracing is not exported or the span is disabled: then there is nothing to continue.
    let _ = span.set_parent(parent);
}

/// Add `traceparent` (and `tracestate`) of the span now entered to `headers`, when it is traced.
pub fn inject(headers: &mut Vec<(String, String)>) {
    Context::map_current(|cx| {
        if cx.span().span_context().is_valid() {
            global::get_text_map_propagator(|p| p.inject_context(cx, &mut HeaderList(headers)));
        }
    });
}

/// The two W3C headers, for the propagator.
#[derive(Default)]
struct Headers {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// A request's header list, for the propagator.
struct HeaderList<'a>(&'a mut Vec<(String, String)>);

impl Injector for HeaderList<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    /// Catches: a stored context that loses its `tracestate`, or its parent span, on the way back.
    #[test]
    fn a_stored_context_names_the_same_parent_and_state() {
        global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let sc = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).unwrap_or_default(),
        );
        let stored = Context::new().with_remote_span_context(sc.clone()).attach();
        let text = current().unwrap_or_default();
        drop(stored);
        assert_eq!(
            text,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=x"
        );
        let back = parent(&text);
        assert_eq!(back.span().span_context().span_id(), sc.span_id());
        assert_eq!(back.span().span_context().trace_state(), sc.trace_state());
        assert!(!parent("garbage").span().span_context().is_valid());
    }
}
