//! OpenTelemetry end to end: the built binary, configured with the standard `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! exports its spans over OTLP/HTTP to a receiver in the test, which decodes the protobuf it was sent.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde_json::json;
use uuid::Uuid;

use crate::common::kafka::{brokers, create_topics, producer};
use crate::common::otlp::{Collector, attributes, hex};
use crate::common::process::{ServiceProcess, cluster_env, wait_healthy};
use crate::common::{ADMIN_TOKEN, Api, Receiver, TestDb, event};

const WAIT: Duration = Duration::from_secs(60);
/// The producer's trace and span, as its `traceparent` names them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";
/// The trace of the caller of `POST /events`.
const HTTP_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn named<'a>(spans: &'a [(String, Span)], name: &str) -> Option<&'a Span> {
    spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == name && (name == "kafka batch" || hex(&s.trace_id) == TRACE_ID))
}

/// Catches: a Kafka message's `traceparent` ignored (the event starting a trace of its own), the attempt losing
/// the event's trace between ingest and the worker (the context not stored with the delivery), the HTTP call not
/// being a child of the attempt or missing its host and status, the receiver getting no `traceparent` (or the
/// attempt's own rather than its HTTP call's), spans never leaving the process, or log lines without the trace id.
#[tokio::test]
async fn a_kafka_events_trace_continues_through_its_delivery_to_the_receiver_and_into_the_logs() {
    let run = Uuid::new_v4().simple().to_string();
    let (topic, publish) = (format!("ss3.o{run}.orders"), format!("integration.o{run}"));
    create_topics(&[topic.clone(), publish.clone()]).await;
    let db = TestDb::create().await;
    let mut collector = Collector::start().await;
    // The first attempt fails: a failed attempt is logged at INFO, inside its span.
    let mut receiver = Receiver::start(&[500]).await;
    let env = cluster_env(
        &db.url,
        &[
            ("SS3_KAFKA__BROKERS", &brokers()),
            ("SS3_KAFKA__TOPIC_REGEX", &format!("^ss3\\.o{run}\\..+")),
            ("SS3_KAFKA__GROUP_ID", &format!("g-{run}")),
            (
                "SS3_KAFKA__PUBLISH_TOPICS",
                &crate::common::kafka::publish_topics_env(&publish),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("SS3_TELEMETRY__EXPORT_INTERVAL_MS", "100"),
            ("SS3_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    );
    let service = ServiceProcess::spawn("api,ingest,worker", &env, "telemetry");
    let api = service.api_url(WAIT).await;
    wait_healthy(&format!("{api}/health"), WAIT).await;
    Api::new(&api, ADMIN_TOKEN)
        .create_subscription("store-o", &receiver.url(), &["*"])
        .await;

    let order = event("order.placed", "store-o", json!({"orderId": "o-1"})).to_string();
    let traceparent = format!("00-{TRACE_ID}-{PRODUCER_SPAN}-01");
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(&traceparent),
    });
    producer()
        .send(
            FutureRecord::to(&topic)
                .key("store-o")
                .payload(&order)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");

    let got = receiver.next(WAIT).await;
    let sent: Vec<&str> = got.header("traceparent").split('-').collect();
    assert_eq!(
        sent.len(),
        4,
        "traceparent: {:?}",
        got.header("traceparent")
    );
    assert_eq!((sent[0], sent[1], sent[3]), ("00", TRACE_ID, "01"));

    collector
        .until(WAIT, |spans| {
            ["kafka batch", "ingest event", "attempt", "POST"]
                .iter()
                .all(|name| named(spans, name).is_some())
        })
        .await;
    let spans = &collector.spans;
    assert!(
        spans
            .iter()
            .all(|(service, _)| service == "integration-service")
    );
    let event_span = named(spans, "ingest event").expect("event span");
    assert_eq!(hex(&event_span.parent_span_id), PRODUCER_SPAN);
    let batch = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            s.name == "kafka batch" && event_span.links.iter().any(|l| l.span_id == s.span_id)
        })
        .expect("the event span links the batch it came in");
    assert_eq!(attributes(batch)["messaging.system"], "kafka");
    assert_eq!(attributes(event_span)["event_type"], "order.placed");

    let attempt = named(spans, "attempt").expect("attempt span");
    assert_eq!(attempt.parent_span_id, event_span.span_id);
    let a = attributes(attempt);
    assert_eq!(
        (a["kind"].as_str(), a["attempt"].as_str()),
        ("webhook_delivery", "1")
    );
    assert_eq!(a["outcome"], "failed");

    let http = named(spans, "POST").expect("HTTP client span");
    assert_eq!(http.parent_span_id, attempt.span_id);
    assert_eq!(http.kind, SpanKind::Client as i32);
    let h = attributes(http);
    assert_eq!(h["server.address"], "127.0.0.1");
    assert_eq!(h["server.port"], receiver.addr.port().to_string());
    assert_eq!(h["http.response.status_code"], "500");
    assert_eq!(h["http.request.method"], "POST");
    assert_eq!(
        sent[2],
        hex(&http.span_id),
        "the receiver's parent is the HTTP call"
    );

    let logged = service
        .log_line(&format!(r#""trace_id":"{TRACE_ID}""#), WAIT)
        .await;
    assert!(logged.contains("attempt failed"), "{logged}");

    // Over `POST /events` a caller's `traceparent` is continued the same way.
    let caller = format!("00-{HTTP_TRACE_ID}-{PRODUCER_SPAN}-01");
    let posted = reqwest::Client::new()
        .post(format!("{api}/events"))
        .bearer_auth(ADMIN_TOKEN)
        .header("traceparent", &caller)
        .json(&event("order.placed", "store-o", json!({"orderId": "o-2"})))
        .send()
        .await
        .expect("posted");
    assert_eq!(posted.status(), 202);
    let in_http_trace = |spans: &[(String, Span)], name: &str| {
        spans
            .iter()
            .map(|(_, s)| s.clone())
            .find(|s| s.name == name && hex(&s.trace_id) == HTTP_TRACE_ID)
    };
    collector
        .until(WAIT, |spans| {
            ["POST /events", "ingest event", "attempt"]
                .iter()
                .all(|name| in_http_trace(spans, name).is_some())
        })
        .await;
    let server = in_http_trace(&collector.spans, "POST /events").expect("server span");
    assert_eq!(hex(&server.parent_span_id), PRODUCER_SPAN);
    let ingested = in_http_trace(&collector.spans, "ingest event").expect("event span");
    assert_eq!(ingested.parent_span_id, server.span_id);
    let attempt = in_http_trace(&collector.spans, "attempt").expect("attempt span");
    assert_eq!(attempt.parent_span_id, ingested.span_id);
    assert!(
        in_http_trace(&collector.spans, "request").is_none(),
        "API request spans are not exported"
    );
}
