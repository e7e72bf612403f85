//! A real OTLP/HTTP receiver: the service exports to it as to a collector (`POST /v1/traces`, protobuf), and the
//! test decodes what arrived with the protocol's own messages.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::Receiver;

/// The receiver, and every span it decoded so far with its resource's `service.name`.
pub struct Collector {
    receiver: Receiver,
    pub spans: Vec<(String, Span)>,
}

impl Collector {
    pub async fn start() -> Self {
        Self {
            receiver: Receiver::start(&[]).await,
            spans: Vec::new(),
        }
    }

    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.receiver.addr)
    }

    /// Decode exports as they arrive until `done` holds for the spans received; fails the test after `within`.
    pub async fn until(&mut self, within: Duration, done: impl Fn(&[(String, Span)]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.spans) {
            let Some(export) = self.receiver.next_before(deadline).await else {
                let names: Vec<&str> = self.spans.iter().map(|(_, s)| s.name.as_str()).collect();
                panic!("the spans waited for were not exported in time; got {names:?}");
            };
            assert_eq!(export.path, "/v1/traces");
            assert_eq!(export.header("content-type"), "application/x-protobuf");
            let request =
                ExportTraceServiceRequest::decode(export.body.as_slice()).expect("OTLP protobuf");
            for resource in request.resource_spans {
                let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                let service = attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                    .unwrap_or_default();
                for scope in resource.scope_spans {
                    self.spans
                        .extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// Lower-case hex of an id, as `traceparent` writes it.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attributes: strings as they are, numbers and booleans in their decimal/text form.
pub fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::BoolValue(b) => b.to_string(),
                Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}
