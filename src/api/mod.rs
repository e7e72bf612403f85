//! The HTTP API (poem-openapi): one module per resource, one error mapping, OpenAPI at `/openapi.json`, UI at `/docs`.

pub mod auth;
pub mod code;
pub mod connectors;
pub mod credentials;
pub mod deliveries;
pub mod edge;
pub mod event_types;
pub mod events;
pub mod health;
pub mod oauth;
pub mod problem;
pub mod server;
pub mod spec;
pub mod stats;
pub mod subscriptions;
pub mod types;

use std::sync::Arc;
use workflows::lanes::LaneLimits;

use poem::middleware::Tracing;
use poem::{Endpoint, EndpointExt, Response, Route};
use poem_openapi::{OpenApiService, Tags};
use sqlx::PgPool;

use crate::config::{CredentialsConfig, Secret};
use crate::credentials::Validator;
use crate::delivery::target::TargetPolicy;
use crate::ingest::HttpIngest;
use crate::metrics::Metrics;
use crate::secrets::SecretStore;
use jobs::connector::handler::ConnectorDeps;

/// What handlers share (cheap to clone: every field is shared).
#[derive(Clone)]
pub struct AppState {
    /// The API role's connection pool.
    pub pool: PgPool,
    /// Webhook signing secrets and connector credentials.
    pub secrets: Arc<dyn SecretStore>,
    /// Event fan-out for `POST /events` and subscription tests (the same as Kafka ingest's), in shared transactions.
    pub ingestor: HttpIngest,
    /// Which targets subscriptions may use.
    pub target_policy: TargetPolicy,
    /// The platform operator's bearer token; empty: no operator access.
    pub admin_token: Secret,
    /// `[admin]`: the admin panel's settings.
    pub admin: crate::config::AdminConfig,
    /// Largest event `POST /events` accepts, in bytes (`kafka.max_message_bytes`, as for Kafka ingest).
    pub max_event_bytes: usize,
    /// The process's Prometheus counters.
    pub metrics: Arc<Metrics>,
    /// The long-lived Kafka client `/ready` probes with, when Kafka is configured.
    pub kafka_probe: Option<Arc<health::KafkaProbe>>,
    /// API key and access token validation.
    pub validator: Validator,
    /// `[credentials]` settings.
    pub credentials: CredentialsConfig,
    /// Connector adapters, credentials and marketplace HTTP client (test connection uses them directly).
    pub connectors: ConnectorDeps,
    /// Seconds between polls of a new polling connector that sets none.
    pub connectors_default_poll: u32,
    /// Per-subscription limits of attempts in flight, and when a receiver counts as slow.
    pub lanes: LaneLimits,
    /// The service clock (statistics windows end at its now; tests move it).
    pub clock: Arc<dyn jobs::clock::Clock>,
}

/// The OpenAPI document's tags, one per resource.
#[derive(Tags)]
pub enum Tag {
    /// Webhook subscriptions.
    Subscriptions,
    /// The delivery log, dead letters and re-triggers.
    Deliveries,
    /// Domain events over HTTP.
    Events,
    /// The event catalog: every event type the platform emits, with a schema of its data and an example.
    EventTypes,
    /// API keys and OAuth clients of external apps.
    Credentials,
    /// Marketplace connectors, their sync log and jobs.
    Connectors,
    /// Liveness, readiness, metrics.
    Operations,
}

/// Keyset paging: `rows` was fetched with `limit + 1`; returns the page and the cursor of the next one.
pub fn next_page<R, T: From<R>>(
    rows: Vec<R>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > limit;
    let items: Vec<T> = rows
        .into_iter()
        .take(limit as usize)
        .map(Into::into)
        .collect();
    let next = if more {
        items.last().map(cursor_of)
    } else {
        None
    };
    (items, next)
}

/// Page size: 50 by default, 1–200.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

type Apis = (
    health::HealthApi,
    subscriptions::SubscriptionsApi,
    deliveries::DeliveriesApi,
    events::EventsApi,
    event_types::EventTypesApi,
    credentials::CredentialsApi,
    oauth::OAuthApi,
    connectors::ConnectorsApi,
    stats::StatsApi,
    subscriptions::RotateApi,
    subscriptions::PayloadFilterApi,
);

/// The OpenAPI service (also printed by `integration-service openapi`).
pub fn openapi() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            subscriptions::SubscriptionsApi,
            deliveries::DeliveriesApi,
            events::EventsApi,
            event_types::EventTypesApi,
            credentials::api(),
            oauth::OAuthApi,
            connectors::api(),
            stats::StatsApi,
            subscriptions::RotateApi,
            subscriptions::PayloadFilterApi,
        ),
        "integration-service",
        env!("CARGO_PKG_VERSION"),
    )
}

/// The whole HTTP application; `limits` bound every request body as it is read (see `edge`).
pub fn app(state: AppState, limits: edge::BodyLimits) -> impl Endpoint {
    let api = openapi();
    let edge = Arc::new(edge::Edge::new(limits, &api.spec()));
    // The augmented document (spec.rs), not poem-openapi's own: clients and Swagger UI see the same one. The UI
    // page embeds the document it is given verbatim, so swapping that text swaps the document.
    let document = spec::document_text();
    let ui_html = api.swagger_ui_html().replacen(&api.spec(), &document, 1);
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    let ui = poem::endpoint::make_sync(move |_| poem::web::Html(ui_html.clone()));
    Route::new()
        .at("/openapi.json", poem::get(spec))
        .at("/docs", poem::get(ui))
        .nest("/admin", crate::admin::routes())
        .nest("/", api)
        .data(state)
        .around(move |ep, req| {
            let edge = edge.clone();
            async move { edge.call(&ep, req).await }
        })
        .with(Tracing)
        .catch_all_error(problem::catch_all)
}
