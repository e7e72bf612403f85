//! Building and running the service from a config: shared by `main` and every integration test.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::connectors::{Registry, amazon, ebay, google};
use jobs::Clock;
use jobs::connector::handler::ConnectorDeps;
use jobs::webhook::WebhookDeps;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::{Config, Mode};
use crate::connectors::{ReqwestChannelHttp, StoreConnectorSecrets};
use crate::credentials::{GateLimits, Validator, ValidatorSettings};
use crate::db;
use crate::db::rate_limits::PgRateGate;
use crate::delivery::http::HttpSender;
use crate::delivery::target::TargetPolicy;
use crate::ingest::{Ingestor, kafka};
use crate::metrics::Metrics;
use crate::publisher::Relay;
use crate::secrets::cached::CachedSecretStore;
use crate::secrets::embedded::{EmbeddedSecretStore, load_master_key};
use crate::secrets::vault::VaultSecretStore;
use crate::secrets::{SecretStore, StoreSigningSecrets};
use crate::supervisor::Supervisor;
use jobs::queue::effects::Topics;
use jobs::worker::{Faults, LeaseSettings, NoFaults, Worker, WorkerSettings};

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The HTTP API.
    pub api: bool,
    /// The Kafka consumer.
    pub ingest: bool,
    /// The job worker and the outbox relay.
    pub worker: bool,
}

impl Roles {
    /// Everything.
    pub const ALL: Roles = Roles {
        api: true,
        ingest: true,
        worker: true,
    };
    /// The HTTP API only.
    pub const API: Roles = Roles {
        api: true,
        ingest: false,
        worker: false,
    };
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut roles = Roles {
            api: false,
            ingest: false,
            worker: false,
        };
        for role in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "api" => roles.api = true,
                "ingest" => roles.ingest = true,
                "worker" => roles.worker = true,
                "all" => roles = Roles::ALL,
                other => {
                    return Err(format!(
                        "unknown role {other:?}: use api, ingest, worker (comma-separated) or all"
                    ));
                }
            }
        }
        if roles
            == (Roles {
                api: false,
                ingest: false,
                worker: false,
            })
        {
            return Err("no role given".into());
        }
        Ok(roles)
    }
}

/// A built service, ready to run roles.
pub struct Application {
    config: Config,
    pools: db::Pools,
    state: AppState,
    webhook: WebhookDeps,
    vault: Option<Arc<VaultSecretStore>>,
    worker_faults: Arc<dyn Faults>,
}

/// A unique worker name: host, pid and a random suffix.
pub fn generated_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The connectors this service offers, calling the deployment's endpoints. The composition root names the
/// adapters; the framework in the `connectors` crate names none.
pub fn connector_registry(
    amazon: amazon::Endpoints,
    ebay: ebay::Endpoints,
    google: google::Endpoints,
) -> Registry {
    Registry::new()
        .with(amazon::Amazon::new(amazon))
        .with(ebay::Ebay::new(ebay))
        .with(google::GoogleShopping::new(google))
}

impl Application {
    /// Connect, migrate, and wire every component. Fails with a message naming what is wrong.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let pools = db::Pools::new(&config)?;
        let pool = pools.api.clone();
        // On the API's pool: it leaves connections open there, so the credential cache's NOTIFY listener connects
        // at once and does not clear the cache after the first requests were served.
        db::migrate(&pools.api)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate the database (database_url): {e:#}"))?;
        let metrics = Arc::new(Metrics::default());
        // The worker reads signing secrets on every delivery: they come out of its budget, not the API's.
        let (secrets, vault) = Self::secret_store(&config, pools.worker.clone()).await?;
        let target_policy = TargetPolicy {
            refuse_private: config.mode == Mode::Production,
            allowed_hosts: Arc::new(config.delivery.allowed_private_hosts.clone()),
        };
        let sender = HttpSender::new(
            Duration::from_millis(config.delivery.connect_timeout_ms),
            Duration::from_millis(config.delivery.timeout_ms),
            config.delivery.response_body_limit,
            target_policy.clone(),
        )?;
        let webhook = WebhookDeps {
            sender: Arc::new(sender),
            secrets: Arc::new(StoreSigningSecrets(secrets.clone())),
            clock: clock.clone(),
            time_scale: config.worker.time_scale,
            secret_retry: Duration::from_secs(config.worker.secret_retry_secs),
            worker: String::new(),
        };
        let k = &config.connectors;
        let channel_policy = TargetPolicy {
            refuse_private: config.mode == Mode::Production,
            allowed_hosts: Arc::new(k.allowed_private_hosts.clone()),
        };
        let connectors = ConnectorDeps {
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
            clock,
            time_scale: config.worker.time_scale,
            secret_retry: Duration::from_secs(config.worker.secret_retry_secs),
            max_inline_wait: Duration::from_millis(k.max_inline_wait_ms),
            worker: String::new(),
        };
        let c = &config.credentials;
        let validator = Validator::new(
            pool.clone(),
            ValidatorSettings {
                bcrypt_cost: c.bcrypt_cost,
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
        .await?;
        let state = AppState {
            validator,
            credentials: config.credentials.clone(),
            ingestor: Ingestor::new(pool.clone(), metrics.clone()),
            pool,
            secrets,
            target_policy,
            admin_token: config.admin_token.clone(),
            max_event_bytes: config.kafka.max_message_bytes,
            metrics,
            kafka_probe: Self::kafka_probe(&config)?,
            connectors,
            connectors_default_poll: config.connectors.default_poll_interval_secs,
        };
        Ok(Self {
            config,
            pools,
            state,
            webhook,
            vault,
            worker_faults: Arc::new(NoFaults),
        })
    }

    /// The `/ready` probe's Kafka client, when Kafka is configured.
    fn kafka_probe(config: &Config) -> anyhow::Result<Option<Arc<api::health::KafkaProbe>>> {
        let brokers = config
            .kafka
            .enabled()
            .then_some(config.kafka.brokers.as_str());
        Ok(brokers
            .map(api::health::KafkaProbe::new)
            .transpose()?
            .map(Arc::new))
    }

    /// Make this application's workers consult `faults` at each step of their cycle (chaos tests only).
    pub fn with_worker_faults(mut self, faults: Arc<dyn Faults>) -> Self {
        self.worker_faults = faults;
        self
    }

    /// Vault when `vault.addr` is set, the embedded store otherwise; both behind a short read cache.
    async fn secret_store(
        config: &Config,
        pool: PgPool,
    ) -> anyhow::Result<(Arc<dyn SecretStore>, Option<Arc<VaultSecretStore>>)> {
        if config.vault.enabled() {
            let vault = Arc::new(
                VaultSecretStore::connect(&config.vault)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot log in to Vault at {} (vault.addr): {e}",
                            config.vault.addr
                        )
                    })?,
            );
            let cached = CachedSecretStore::new(
                vault.clone(),
                Duration::from_secs(config.vault.cache_ttl_secs),
                100_000,
            );
            return Ok((Arc::new(cached), Some(vault)));
        }
        let key = load_master_key(config.secrets.master_key.expose(), &config.secrets.key_file)?;
        let embedded: Arc<dyn SecretStore> = Arc::new(EmbeddedSecretStore::new(pool, key));
        Ok((
            Arc::new(CachedSecretStore::new(
                embedded,
                Duration::from_secs(30),
                100_000,
            )),
            None,
        ))
    }

    /// Shared state (tests read the pool and secrets from here).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The per-role connection pools (`state().pool` is the API's).
    pub fn pools(&self) -> &db::Pools {
        &self.pools
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A worker named `name` over this application's queue (tests drive it by hand).
    pub fn worker(&self, name: &str) -> Worker {
        let w = &self.config.worker;
        let apalis = jobs::queue::apalis_config(
            w.batch_size,
            Duration::from_secs(w.heartbeat_interval_secs),
        );
        let deps = WebhookDeps {
            worker: name.to_owned(),
            ..self.webhook.clone()
        };
        let connector = ConnectorDeps {
            worker: name.to_owned(),
            gate: Arc::new(PgRateGate(self.pools.worker.clone())),
            ..self.state.connectors.clone()
        };
        let settings = WorkerSettings {
            apalis,
            concurrency: w.concurrency,
            poll_interval: Duration::from_millis(w.poll_interval_ms),
            topics: Topics {
                publish: self.config.kafka.publish_topic.clone(),
                inbound: self.config.connectors.inbound_topic.clone(),
            },
            sweep_every: Duration::from_secs(w.sweep_interval_secs),
            job_retention: Duration::from_secs(w.job_retention_secs),
            lease: LeaseSettings {
                lease: Duration::from_millis(w.lease_ms),
                renew_every: Duration::from_millis(w.lease_renew_ms),
                rescue_every: Duration::from_millis(w.lease_rescue_ms),
            },
            faults: self.worker_faults.clone(),
        };
        Worker::new(
            self.pools.worker.clone(),
            name,
            deps,
            connector,
            settings,
            self.state.metrics.clone(),
        )
    }

    /// Bind the configured listen address.
    pub async fn bind(&self) -> anyhow::Result<TcpListener> {
        TcpListener::bind(self.config.listen_addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} (listen_addr): {e}",
                    self.config.listen_addr
                )
            })
    }

    /// Run `roles` until `shutdown`, then stop claiming work, drain in-flight jobs and return.
    /// `listener` is required for the api role (tests pass one bound to port 0). A role that stops on its own
    /// stops the others, and the error names it (`main` then exits non-zero).
    pub async fn run(
        &self,
        roles: Roles,
        listener: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let roles_of = Supervisor::new(&shutdown);
        let shutdown = roles_of.stop();
        if let Some(vault) = &self.vault {
            let renew = vault.clone().keep_token_alive(shutdown.clone());
            roles_of.spawn("vault token renewal", async move {
                renew.await;
                Ok(())
            });
        }
        if roles.worker {
            let name = if self.config.worker.name.is_empty() {
                generated_worker_name()
            } else {
                self.config.worker.name.clone()
            };
            tracing::info!(worker = %name, "starting worker");
            let worker = self.worker(&name).run(shutdown.clone());
            roles_of.spawn("worker", async move {
                worker.await;
                Ok(())
            });
            if self.config.kafka.enabled() {
                let k = &self.config.kafka;
                kafka::create_topics(
                    &k.brokers,
                    &[
                        k.publish_topic.clone(),
                        self.config.connectors.inbound_topic.clone(),
                    ],
                    k.create_partitions,
                )
                .await?;
                let relay = Relay::new(
                    self.pools.worker.clone(),
                    &self.config.kafka.brokers,
                    self.state.metrics.clone(),
                )?;
                let relay = relay.run(
                    Duration::from_millis(self.config.worker.outbox_poll_ms),
                    shutdown.clone(),
                );
                roles_of.spawn("worker (outbox relay)", async move {
                    relay.await;
                    Ok(())
                });
            }
        }
        if roles.ingest && self.config.kafka.enabled() {
            let k = &self.config.kafka;
            kafka::create_topics(&k.brokers, &k.create_topics, k.create_partitions).await?;
            let consumer = kafka::consumer(k)?;
            let ingest = kafka::run(
                consumer,
                Ingestor::new(self.pools.ingest.clone(), self.state.metrics.clone()),
                k.clone(),
                shutdown.clone(),
            );
            roles_of.spawn("ingest", async move {
                ingest.await;
                Ok(())
            });
        } else if roles.ingest {
            tracing::info!("kafka.brokers is empty: events arrive over POST /events only");
        }
        if roles.api {
            let flush = Duration::from_secs(self.config.credentials.last_used_flush_secs.max(1));
            let flusher = self.state.validator.clone().run(flush, shutdown.clone());
            roles_of.spawn("api (last-used flush)", async move {
                flusher.await;
                Ok(())
            });
            let listener =
                listener.ok_or_else(|| anyhow::anyhow!("the api role needs a listener"))?;
            let addr: SocketAddr = listener.local_addr()?;
            tracing::info!(%addr, "API listening");
            let http = &self.config.http;
            let app = api::app(
                self.state.clone(),
                api::edge::BodyLimits {
                    max_body_bytes: http.max_body_bytes,
                    max_event_bytes: self.config.kafka.max_message_bytes,
                    read_timeout: Duration::from_millis(http.body_read_timeout_ms),
                },
            );
            let limits = api::server::ServerLimits {
                header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
                shutdown_grace: Duration::from_secs(10),
            };
            roles_of.spawn("api", async move {
                api::server::serve(listener, app, limits, shutdown)
                    .await
                    .map_err(|e| anyhow::anyhow!("its listener failed: {e}"))
            });
        }
        roles_of.finish().await
    }
}
