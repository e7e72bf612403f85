//! `/health` (alive), `/ready` (dependencies reachable), `/metrics` (Prometheus).

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use super::problem::RETRY_AFTER_SECS;
use super::{AppState, Tag};
use jobs::queue;
use jobs::queue::attempts::lanes;

/// Readiness of each dependency (`null` when not configured).
#[derive(Debug, Object)]
pub struct Readiness {
    /// All configured dependencies answer.
    pub ready: bool,
    /// `SELECT 1` on the role's pool succeeded.
    pub postgres: bool,
    /// The secret store (Vault, or the embedded store's table) can be read.
    pub secrets: bool,
    /// A broker answered a metadata request within 2 s; `null` when Kafka is not configured.
    pub kafka: Option<bool>,
}

#[derive(ApiResponse)]
enum Ready {
    /// Every configured dependency answers: route traffic here.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency does not answer (the body says which); probe again after `Retry-After` seconds.
    #[oai(status = 503)]
    NotReady(Json<Readiness>, #[oai(header = "Retry-After")] u32),
}

/// The Kafka client `/ready` probes with: built once at start-up and reused, so a probe costs one metadata request
/// rather than a new librdkafka client (its threads and connections) each time.
pub struct KafkaProbe {
    producer: Arc<BaseProducer>,
}

impl KafkaProbe {
    /// A client of `brokers`; it connects lazily.
    pub fn new(brokers: &str) -> anyhow::Result<Self> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()?;
        Ok(Self {
            producer: Arc::new(producer),
        })
    }

    /// Whether a broker answers a metadata request within 2 s.
    pub async fn reachable(&self) -> bool {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// Operations endpoints.
pub struct HealthApi;

#[OpenApi(tag = "Tag::Operations")]
impl HealthApi {
    /// The process is alive.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Postgres, the secret store and Kafka (as configured) answer.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self, state: Data<&AppState>) -> Ready {
        let postgres = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
        let secrets = state.secrets.ready().await;
        let kafka = match &state.kafka_probe {
            Some(probe) => Some(probe.reachable().await),
            None => None,
        };
        let ready = postgres && secrets && kafka.unwrap_or(true);
        let body = Json(Readiness {
            ready,
            postgres,
            secrets,
            kafka,
        });
        if ready {
            Ready::Ready(body)
        } else {
            Ready::NotReady(body, RETRY_AFTER_SECS)
        }
    }

    /// Counters and queue depth in Prometheus text format.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        let (due, scheduled) = queue::depth(&state.pool).await.unwrap_or((-1, -1));
        let slow = lanes::slow_lanes(&state.pool, state.lanes.slow_after)
            .await
            .unwrap_or(-1);
        let cache = state.validator.cache_stats();
        PlainText(state.metrics.render((due, scheduled, slow), cache))
    }
}
