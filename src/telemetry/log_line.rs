//! Log lines that carry the trace id of the span they were written in (when it is traced): a `trace_id` and
//! `span_id` field in JSON, ` trace_id=…` at the end of a text line. Lines outside traced spans are unchanged.

use std::fmt;

use opentelemetry::Context;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A log line format with the trace id added.
pub struct WithTraceId<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceId<F> {
    /// Around a JSON format.
    pub fn json(inner: F) -> Self {
        Self { inner, json: true }
    }

    /// Around a text format.
    pub fn text(inner: F) -> Self {
        Self { inner, json: false }
    }
}

/// The ids of the OpenTelemetry span entered on this thread (the tracing layer activates it), when it is valid.
fn current_ids() -> Option<(TraceId, SpanId)> {
    Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
    })
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        if self.json && line.starts_with('{') {
            writer.write_str("{")?;
            write!(writer, r#""trace_id":"{trace_id}","span_id":"{span_id}","#)?;
            writer.write_str(&line[1..])
        } else {
            let body = line.strip_suffix('\n').unwrap_or(&line);
            writeln!(writer, "{body} trace_id={trace_id}")
        }
    }
}
