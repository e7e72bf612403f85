//! `/health` (alive), `/ready` (dependencies reachable), `/metrics` (Prometheus).

use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AppState, Tag};
use crate::db::queue;

/// Readiness of each dependency (`null` when not configured).
#[derive(Debug, Object)]
pub struct Readiness {
    /// All configured dependencies answer.
    pub ready: bool,
    /// Postgres.
    pub postgres: bool,
    /// The secret store.
    pub secrets: bool,
    /// Kafka, when configured.
    pub kafka: Option<bool>,
}

#[derive(ApiResponse)]
enum Ready {
    /// Ready.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Not ready.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

async fn kafka_reachable(brokers: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use rdkafka::ClientConfig;
        use rdkafka::producer::{BaseProducer, Producer};
        let producer: Result<BaseProducer, _> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create();
        producer
            .map(|p| {
                p.client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
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
        let kafka = match &state.kafka_brokers {
            Some(brokers) => Some(kafka_reachable(brokers.clone()).await),
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
            Ready::NotReady(body)
        }
    }

    /// Counters and queue depth in Prometheus text format.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        let (due, scheduled) = queue::depth(&state.pool).await.unwrap_or((-1, -1));
        let cache = state.validator.cache_stats();
        let mut text = state.metrics.render(due, scheduled);
        text.push_str(&format!(
            "# HELP ss3_validation_cache_total Credential validations by cache outcome\n# TYPE ss3_validation_cache_total counter\nss3_validation_cache_total{{outcome=\"hit\"}} {}\nss3_validation_cache_total{{outcome=\"miss\"}} {}\n",
            cache.hits, cache.misses
        ));
        PlainText(text)
    }
}
