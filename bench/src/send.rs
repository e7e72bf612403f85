//! How the webhook suite sends events: to Kafka or to `POST /events`, each stamped with its send time, each send's
//! acknowledgement timed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use integration_service::config::Config;

/// Sends one event, to Kafka (when a producer is set) or to `POST /events`.
pub(super) struct Sender {
    producer: Option<rdkafka::producer::FutureProducer>,
    http: reqwest::Client,
    api: String,
    topic: String,
    /// How long each send took to be acknowledged (µs): the broker's ack (`acks=all`) or the 202 of `POST /events`.
    acked_us: Mutex<Vec<u64>>,
}

impl Sender {
    pub(super) fn new(
        via: &str,
        config: &Config,
        api: String,
        topic: String,
    ) -> anyhow::Result<Self> {
        let producer = if via == "kafka" {
            Some(
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &config.kafka.brokers)
                    .set("linger.ms", "1")
                    .create()?,
            )
        } else {
            None
        };
        Ok(Self {
            producer,
            http: reqwest::Client::new(),
            api,
            topic,
            acked_us: Mutex::default(),
        })
    }

    /// The acknowledgement times so far, sorted (µs).
    pub(super) fn acked(&self) -> Vec<u64> {
        let mut acked = self
            .acked_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        acked.sort_unstable();
        acked
    }

    pub(super) async fn send(&self, body: String) -> anyhow::Result<()> {
        let started = Instant::now();
        self.send_once(body).await?;
        let took = started.elapsed().as_micros() as u64;
        self.acked_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(took);
        Ok(())
    }

    async fn send_once(&self, body: String) -> anyhow::Result<()> {
        match &self.producer {
            Some(p) => {
                let record =
                    rdkafka::producer::FutureRecord::<str, str>::to(&self.topic).payload(&body);
                p.send(record, Duration::from_secs(10))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| anyhow::anyhow!(e))
            }
            None => {
                let r = self
                    .http
                    .post(format!("{}/events", self.api))
                    .bearer_auth("bench-token")
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "POST /events: {}", r.status());
                Ok(())
            }
        }
    }
}

/// An event stamped with its send time (microseconds since `base`), which the receiver turns into latency, and
/// with the wall clock as `occurredAt`, from which [`stages`] times the way to the ingest transaction.
pub(super) fn stamped_event(base: Instant) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({"eventId": Uuid::new_v4(), "eventType": "order.placed", "storeId": "bench", "occurredAt": now,
           "data": {"orderId": "o", "sentAtUs": base.elapsed().as_micros() as u64}})
    .to_string()
}
