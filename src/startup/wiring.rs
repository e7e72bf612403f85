//! The components the roles share, each built from its section of the configuration.

use std::sync::Arc;
use std::time::Duration;

use jobs::Clock;
use jobs::attempt::Pacing;
use jobs::connector::handler::ConnectorDeps;
use jobs::webhook::WebhookDeps;
use sqlx::PgPool;

use super::connector_registry;
use crate::config::{Config, Mode};
use crate::connectors::{ReqwestChannelHttp, StoreConnectorSecrets};
use crate::credentials::{GateLimits, Validator, ValidatorSettings};
use crate::db::rate_limits::PgRateGate;
use crate::delivery::http::HttpSender;
use crate::delivery::target::TargetPolicy;
use crate::secrets::{SecretStore, StoreSigningSecrets};

/// What webhook deliveries need: the signed-POST sender (under the target policy), the signing secrets, and the
/// shared rate limiter (on the worker's pool).
pub(super) fn webhook_deps(
    config: &Config,
    (secrets, worker_pool): (&Arc<dyn SecretStore>, &PgPool),
    target_policy: &TargetPolicy,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<WebhookDeps> {
    let sender = HttpSender::new(
        Duration::from_millis(config.delivery.connect_timeout_ms),
        Duration::from_millis(config.delivery.timeout_ms),
        config.delivery.response_body_limit,
        target_policy.clone(),
    )?;
    Ok(WebhookDeps {
        sender: Arc::new(sender),
        secrets: Arc::new(StoreSigningSecrets(secrets.clone())),
        pacing: pacing(config, clock),
        rate_gate: Arc::new(PgRateGate(worker_pool.clone())),
    })
}

/// What connector jobs need: the adapters, their credentials, HTTP to the channels and the shared rate limits.
pub(super) fn connector_deps(
    config: &Config,
    secrets: &Arc<dyn SecretStore>,
    pool: &PgPool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ConnectorDeps> {
    let k = &config.connectors;
    let channel_policy = TargetPolicy {
        refuse_private: config.mode == Mode::Production,
        allowed_hosts: Arc::new(k.allowed_private_hosts.clone()),
    };
    Ok(ConnectorDeps {
        registry: Arc::new(connector_registry(
            k.amazon.clone(),
            k.ebay.clone(),
            k.google_shopping.clone(),
        )),
        secrets: Arc::new(StoreConnectorSecrets(secrets.clone())),
        http: Arc::new(ReqwestChannelHttp::new(
            Duration::from_millis(k.connect_timeout_ms),
            Duration::from_millis(k.timeout_ms),
            channel_policy,
        )?),
        gate: Arc::new(PgRateGate(pool.clone())),
        pacing: pacing(config, clock),
        max_inline_wait: Duration::from_millis(k.max_inline_wait_ms),
    })
}

/// Clock and waits shared by every kind of job (the worker's name is set when a worker is made).
fn pacing(config: &Config, clock: Arc<dyn Clock>) -> Pacing {
    Pacing {
        clock,
        time_scale: config.worker.time_scale,
        secret_retry: Duration::from_secs(config.worker.secret_retry_secs),
        worker: String::new(),
        slow_after: Duration::from_millis(config.lanes.slow_ms),
    }
}

/// The gateway's credential validator (cache, bcrypt gate, last-used flush) on the API's pool.
pub(super) async fn validator(config: &Config, pool: &PgPool) -> anyhow::Result<Validator> {
    let c = &config.credentials;
    Validator::new(
        pool.clone(),
        ValidatorSettings {
            bcrypt_cost: c.bcrypt_cost,
            failure_delay: Duration::from_millis(c.failure_delay_ms),
            lookup_batch: Duration::from_millis(c.lookup_batch_ms),
            cache_ttl: Duration::from_secs(c.cache_ttl_secs),
            cache_max_entries: c.cache_max_entries,
            last_used_precision: Duration::from_secs(c.last_used_precision_secs),
            gate: GateLimits {
                concurrency: c.verify_concurrency,
                queue: c.verify_queue,
                wait: Duration::from_millis(c.verify_wait_ms),
                nice: c.verify_nice,
            },
        },
    )
    .await
}
