//! Building and running the service from a config: shared by `main` and every integration test.

mod database_login;
mod roles;
mod wiring;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::connectors::{Registry, amazon, ebay, google};
use jobs::Clock;
use jobs::connector::handler::ConnectorDeps;
use jobs::webhook::WebhookDeps;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::{Config, Mode};
use crate::db;
use crate::db::rate_limits::PgRateGate;
use crate::delivery::target::TargetPolicy;
use crate::ingest::{HttpIngest, Ingestor};
use crate::metrics::Metrics;
use crate::secrets::SecretStore;
use crate::secrets::cached::CachedSecretStore;
use crate::secrets::embedded::{EmbeddedSecretStore, load_master_key};
use crate::secrets::vault::VaultSecretStore;
use jobs::queue::effects::Topics;
use jobs::worker::{Faults, Handoff, LeaseSettings, NoFaults, Vacuum, Worker, WorkerSettings};

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
    /// Every role in one process (`--roles api,ingest,worker`, the default).
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
    /// Where this process's ingest finds its running worker (`worker.handoff`).
    handoff: Handoff,
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
        let webhook = wiring::webhook_deps(
            &config,
            (&secrets, &pools.worker),
            &target_policy,
            clock.clone(),
        )?;
        let connectors = wiring::connector_deps(&config, &secrets, &pool, clock.clone())?;
        let validator = wiring::validator(&config, &pool).await?;
        let handoff = Handoff::default();
        let state = AppState {
            validator,
            credentials: config.credentials.clone(),
            ingestor: HttpIngest::start(
                Ingestor::new(
                    pool.clone(),
                    metrics.clone(),
                    Self::handoff_of(&config, &handoff),
                ),
                config.http.ingest_writers,
                config.http.ingest_batch,
            ),
            pool,
            secrets,
            target_policy,
            admin_token: config.admin_token.clone(),
            admin: config.admin.clone(),
            max_event_bytes: config.kafka.max_message_bytes,
            metrics,
            kafka_probe: Self::kafka_probe(&config)?,
            connectors,
            connectors_default_poll: config.connectors.default_poll_interval_secs,
            lanes: config.lanes.limits(),
            clock,
        };
        Ok(Self {
            config,
            pools,
            state,
            webhook,
            vault,
            worker_faults: Arc::new(NoFaults),
            handoff,
        })
    }

    /// The hand-off an ingest of this process uses: none when `worker.handoff` is off.
    fn handoff_of(config: &Config, handoff: &Handoff) -> Option<Handoff> {
        config.worker.handoff.then(|| handoff.clone())
    }

    /// The hand-off of this application's ingest.
    pub(crate) fn ingest_handoff(&self) -> Option<Handoff> {
        Self::handoff_of(&self.config, &self.handoff)
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
        let mut deps = self.webhook.clone();
        deps.pacing.worker = name.to_owned();
        let mut connector = ConnectorDeps {
            gate: Arc::new(PgRateGate(self.pools.worker.clone())),
            ..self.state.connectors.clone()
        };
        connector.pacing.worker = name.to_owned();
        let settings = WorkerSettings {
            apalis,
            concurrency: w.concurrency,
            poll_interval: Duration::from_millis(w.poll_interval_ms),
            idle_poll: Duration::from_millis(w.idle_poll_ms),
            topics: Topics::new(self.config.kafka.publish_topics.clone()),
            sweep_every: Duration::from_secs(w.sweep_interval_secs),
            job_retention: Duration::from_secs(w.job_retention_secs),
            vacuum: Vacuum {
                mode: w.vacuum,
                dead_rows: w.vacuum_dead_rows,
            },
            lease: LeaseSettings {
                lease: Duration::from_millis(w.lease_ms),
                renew_every: Duration::from_millis(w.lease_renew_ms),
                rescue_every: Duration::from_millis(w.lease_rescue_ms),
            },
            lanes: self.config.lanes.limits(),
            handoff: self.handoff.clone(),
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
}
