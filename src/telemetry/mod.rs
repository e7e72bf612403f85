//! Logs and OpenTelemetry traces. Logs go to stderr (text, or JSON lines with `SS3_LOG_FORMAT=json`), each line of
//! a traced span carrying its trace id. With `telemetry.otlp_endpoint` set, spans are also exported over OTLP/HTTP
//! (protobuf), in batches from the SDK's own thread; unset, there is no OpenTelemetry layer at all, so spans cost
//! what `tracing` costs and nothing more.

mod export;
mod log_line;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{FilterFn, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;

/// The exporter of this process, flushed by [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// A subscriber that only logs, for what happens before the configuration (which says where traces go) is read.
pub fn logs_only() -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(filter())
        .with(log_layer())
}

/// Install the process's subscriber: logs, and the OpenTelemetry layer when `config` exports traces. Traces
/// continue the W3C `traceparent` of what they came from (a Kafka message, a stored delivery).
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let provider = config.enabled().then(|| provider(config)).transpose()?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("integration-service"))
            .with_tracked_inactivity(false)
            .with_filter(exported())
    });
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    // `RUST_LOG` selects spans and log lines alike (a span it leaves out is not exported either: keep the
    // default INFO for the service's targets when exporting); the OpenTelemetry layer also filters out what it
    // must not export.
    tracing_subscriber::registry()
        .with(filter())
        .with(at_most_info(provider.is_some()))
        .with(otel)
        .with(log_layer())
        .try_init()?;
    if config.enabled() {
        tracing::info!(
            endpoint = %config.otlp_endpoint,
            service = %config.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Export the spans still waiting, then stop the exporter (blocking work, done off the runtime's threads).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "exporting the last spans failed"),
            Err(e) => tracing::warn!(error = %e, "exporting the last spans failed"),
        }
    }
}

/// What is exported, whatever `RUST_LOG` says: the spans of the work (Kafka batches, events, attempts, HTTP calls)
/// and warnings and errors as span events. Not exported: the API's request spans (poem's `Tracing` middleware), as
/// the gateway validates a credential on every request it serves and a trace per validation (or per health check)
/// would bury the traces of events; and the worker loop's own span, which lasts as long as the process (an attempt
/// with no stored trace context starts a trace of its own rather than joining one that never ends).
fn exported() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool + Clone> {
    filter_fn(|meta| {
        if meta.is_span() {
            *meta.level() <= Level::INFO
                && !meta.target().starts_with("poem::")
                && !(meta.target().starts_with("jobs::worker") && meta.name() == "worker")
        } else {
            *meta.level() <= Level::WARN
        }
    })
    .with_max_level_hint(Level::INFO)
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        // vaultrs and its HTTP layer log every answer that is not 2xx at ERROR, a 404 for an absent secret too;
        // the service reports the Vault failures that matter itself, with their context.
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn,vaultrs=off,rustify=off"))
}

/// With traces exported, nothing is recorded above INFO, whatever `RUST_LOG` asks: with a DEBUG callsite enabled
/// anywhere, tracing-subscriber's per-layer filter of the OpenTelemetry layer (0.3.23) loses track of new spans and
/// they leave their trace (measured: `RUST_LOG=info,x=debug`, even for a target that does not exist). Without
/// export, `RUST_LOG` is taken as it is.
fn at_most_info(exporting: bool) -> LevelFilter {
    if exporting {
        LevelFilter::INFO
    } else {
        LevelFilter::TRACE
    }
}

/// Log lines to stderr: JSON with `SS3_LOG_FORMAT=json`, else text; with the trace id when in a traced span.
fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if std::env::var("SS3_LOG_FORMAT").as_deref() == Ok("json") {
        let format = log_line::WithTraceId::json(tracing_subscriber::fmt::format().json());
        Box::new(layer.json().event_format(format))
    } else {
        let format = log_line::WithTraceId::text(tracing_subscriber::fmt::format());
        Box::new(layer.event_format(format))
    }
}

/// The SDK's tracer provider: OTLP/HTTP protobuf to `<otlp_endpoint>/v1/traces` through our own reqwest client,
/// batched every `export_interval_ms`, sampling `sample_ratio` of new traces (continued ones follow their parent).
fn provider(config: &TelemetryConfig) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = format!(
        "{}/v1/traces",
        config.otlp_endpoint.trim().trim_end_matches('/')
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(export::ReqwestExport::new()?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .context("telemetry.otlp_endpoint: cannot build the OTLP exporter")?;
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_millis(config.export_interval_ms))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build(),
        )
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}
