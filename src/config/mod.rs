//! Typed configuration: embedded documented defaults, an optional TOML file, then `SS3_` environment variables.

pub mod from_vault;
mod infra;
mod sections;
mod validate;

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

pub use infra::{
    KafkaConfig, MIN_ROLE_CONNECTIONS, PoolSizes, PoolsConfig, SecretsConfig, VaultConfig,
};
pub use sections::{
    AdminConfig, AutoDisableConfig, ConnectorsConfig, CredentialsConfig, DeliveryConfig,
    HttpConfig, LanesConfig, RetentionConfig, TelemetryConfig, WorkerConfig,
};

/// The defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../../config.default.toml");

/// A value that must never be printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Development allows private targets; production refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Loopback and private targets allowed.
    Development,
    /// Loopback, private and link-local targets refused unless allow-listed.
    Production,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen_addr: SocketAddr,
    /// Postgres URL (`postgres://…`).
    pub database_url: Secret,
    /// Connections of this process in all, split between the roles by `pools`.
    pub max_db_connections: u32,
    /// Development (private targets allowed) or production.
    pub mode: Mode,
    /// Bearer token of platform operators (operator-only endpoints).
    pub admin_token: Secret,
    /// The Kafka consumer and publisher.
    pub kafka: KafkaConfig,
    /// Outgoing webhook requests.
    pub delivery: DeliveryConfig,
    /// The job worker.
    pub worker: WorkerConfig,
    /// Fair delivery: attempts in flight per subscription (connector), and the slow-receiver circuit breaker.
    pub lanes: LanesConfig,
    /// How long the delivery log, ingested events and statistics are kept.
    pub retention: RetentionConfig,
    /// Subscriptions whose every attempt fails are deactivated.
    pub auto_disable: AutoDisableConfig,
    /// The embedded secret store's master key.
    pub secrets: SecretsConfig,
    /// API keys, access tokens and the cost of checking them.
    pub credentials: CredentialsConfig,
    /// Each role's share of `max_db_connections`.
    pub pools: PoolsConfig,
    /// OpenBao/Vault, when it is the secret store.
    pub vault: VaultConfig,
    /// Marketplace connectors.
    pub connectors: ConnectorsConfig,
    /// Limits of the API's HTTP server.
    pub http: HttpConfig,
    /// The admin panel.
    pub admin: AdminConfig,
    /// OpenTelemetry traces.
    pub telemetry: TelemetryConfig,
    /// Whether `database_url` came from Vault (not overridden by the file or the environment): the service then
    /// follows its rotation there. Set by [`Config::load_with_vault`], never read from a file.
    #[serde(skip)]
    pub database_login_from_vault: bool,
}

impl Config {
    /// `max_db_connections` split by the `pools` percentages (each at least [`MIN_ROLE_CONNECTIONS`]).
    pub fn pool_sizes(&self) -> PoolSizes {
        let share =
            |percent: u32| (self.max_db_connections * percent / 100).max(MIN_ROLE_CONNECTIONS);
        PoolSizes {
            api: share(self.pools.api_percent),
            ingest: share(self.pools.ingest_percent),
            worker: share(self.pools.worker_percent),
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is missing or has the wrong type.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("configuration key {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl Config {
    /// Load defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::embedded().merge(Self::overrides(file)))
    }

    /// [`load`](Self::load), and when Vault is configured (`vault.addr`) the start-up configuration it holds
    /// ([`from_vault`]) between the defaults and the file: the file and the environment still override it, and a
    /// log line says which keys came from Vault and which of those were overridden (names only, never values).
    pub async fn load_with_vault(file: Option<&Path>) -> anyhow::Result<Self> {
        let config = Self::load(file)?;
        if !config.vault.enabled() {
            return Ok(config);
        }
        let store = crate::secrets::vault::VaultSecretStore::connect(&config.vault)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot log in to Vault at {} (vault.addr): {e}",
                    config.vault.addr
                )
            })?;
        let found = from_vault::FromVault::read(&from_vault::VaultStore {
            store: &store,
            config: &config.vault,
        })
        .await?;
        let (mount, own, shared) = (
            &config.vault.mount,
            &config.vault.prefix,
            &config.vault.shared_path,
        );
        if found.keys().is_empty() {
            tracing::info!(
                "no start-up configuration in Vault at {mount}/{own} or {mount}/{shared}"
            );
            return Ok(config);
        }
        let (config, overridden) = Self::with_vault(&found, file)?;
        tracing::info!(
            from_vault = %found.keys().join(", "),
            overridden = %overridden.join(", "),
            "start-up configuration read from Vault at {mount}/{own} and {mount}/{shared}; the file and the \
             environment override it"
        );
        Ok(config)
    }

    /// The configuration with `found` between the defaults and the operator's settings, and the keys of `found`
    /// that those override.
    fn with_vault(
        found: &from_vault::FromVault,
        file: Option<&Path>,
    ) -> Result<(Self, Vec<&'static str>), ConfigError> {
        let overrides = Self::overrides(file);
        let overridden = found.overridden(&overrides);
        let mut config =
            Self::from_figment(Self::embedded().merge(found.layer()).merge(overrides))?;
        config.database_login_from_vault =
            found.database_url.is_some() && !overridden.contains(&"database_url");
        Ok((config, overridden))
    }

    fn embedded() -> Figment {
        Figment::from(Toml::string(DEFAULT_TOML))
    }

    /// What the operator set: `file`, then the environment.
    fn overrides(file: Option<&Path>) -> Figment {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(vault_env())
            .merge(otel_env())
            .merge(Env::prefixed("SS3_").split("__"))
            .merge(Env::raw().only(&["DATABASE_URL"]).lowercase(true))
    }

    /// Defaults only (tests start from here and change fields).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_figment(Self::embedded())
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }
}

/// Vault's own variables, as every Vault client reads them: `VAULT_ADDR` → `vault.addr`, `VAULT_TOKEN` →
/// `vault.token`. They override the config file; `SS3_VAULT__ADDR` / `SS3_VAULT__TOKEN` override them.
fn vault_env() -> Env {
    Env::raw().filter_map(|key| match key.as_str().to_ascii_uppercase().as_str() {
        "VAULT_ADDR" => Some("vault.addr".into()),
        "VAULT_TOKEN" => Some("vault.token".into()),
        _ => None,
    })
}

/// OpenTelemetry's own variables, as every OpenTelemetry SDK reads them: `OTEL_EXPORTER_OTLP_ENDPOINT` →
/// `telemetry.otlp_endpoint`, `OTEL_SERVICE_NAME` → `telemetry.service_name`. Below `SS3_TELEMETRY__*`.
fn otel_env() -> Env {
    Env::raw().filter_map(|key| match key.as_str().to_ascii_uppercase().as_str() {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("telemetry.otlp_endpoint".into()),
        "OTEL_SERVICE_NAME" => Some("telemetry.service_name".into()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.worker.lease_ms, 6000);
        assert!(!c.kafka.enabled());
    }

    /// Catches: the documented defaults drifting from the adapters' own (the real marketplace hosts).
    #[test]
    fn default_channel_endpoints_are_the_real_hosts() {
        let c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        let k = &c.connectors;
        assert_eq!(k.amazon, ::connectors::amazon::Endpoints::default());
        assert_eq!(k.ebay, ::connectors::ebay::Endpoints::default());
        assert_eq!(
            k.google_shopping,
            ::connectors::google::Endpoints::default()
        );
        for (key, url) in k.urls() {
            assert!(url.starts_with("https://"), "{key} = {url}");
        }
    }

    /// Catches: `VAULT_ADDR` / `VAULT_TOKEN` documented as honoured but never read (the service then silently used
    /// the embedded store), or overriding the more specific `SS3_VAULT__*`.
    /// Catches: published events on one topic by default (the specification names a topic per type), or a
    /// deployment unable to keep a single topic from the environment.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn each_published_type_has_its_own_topic_unless_the_environment_maps_them() {
        let c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        let topics = jobs::queue::effects::Topics::new(c.kafka.publish_topics);
        for t in jobs::queue::effects::PUBLISHED {
            assert_eq!(topics.of(t), t);
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "SS3_KAFKA__PUBLISH_TOPICS",
                r#"{"webhook.delivered"="integration.webhooks","webhook.dead_lettered"="integration.webhooks"}"#,
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let topics = jobs::queue::effects::Topics::new(c.kafka.publish_topics);
            assert_eq!(topics.of("webhook.dead_lettered"), "integration.webhooks");
            assert_eq!(
                topics.of("connector.dead_lettered"),
                "connector.dead_lettered",
                "entries not named stay"
            );
            assert_eq!(topics.all().len(), 4);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn vault_env_vars_are_honoured_below_ss3_ones() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VAULT_ADDR", "http://vault.example:8200");
            jail.set_env("VAULT_TOKEN", "s.token-from-vault-env");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.vault.addr, "http://vault.example:8200");
            assert_eq!(c.vault.token.expose(), "s.token-from-vault-env");
            assert!(c.vault.enabled());
            jail.set_env("SS3_VAULT__ADDR", "http://ss3.example:8200");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.vault.addr, "http://ss3.example:8200");
            assert_eq!(c.vault.token.expose(), "s.token-from-vault-env");
            Ok(())
        });
    }

    /// Catches: Vault's start-up values overriding the file or the environment (the operator's word must win), or
    /// a login overridden there still followed in Vault.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn vaults_start_up_values_sit_below_the_file_and_the_environment() {
        let found = from_vault::FromVault {
            database_url: Some(Secret::new("postgres://svc:pw@vault-db:5432/ss3")),
            kafka_brokers: Some("vault-kafka:9092".into()),
            otlp_endpoint: Some("http://vault-collector:4318".into()),
            service_name: Some("integration-service-eu".into()),
        };
        figment::Jail::expect_with(|jail| {
            let (c, overridden) = Config::with_vault(&found, None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.database_url.expose(),
                "postgres://svc:pw@vault-db:5432/ss3"
            );
            assert_eq!(c.kafka.brokers, "vault-kafka:9092");
            assert_eq!(c.telemetry.otlp_endpoint, "http://vault-collector:4318");
            assert_eq!(c.telemetry.service_name, "integration-service-eu");
            assert!(overridden.is_empty() && c.database_login_from_vault);
            jail.create_file("ss3.toml", "[kafka]\nbrokers = \"file-kafka:9092\"")?;
            let file = Some(Path::new("ss3.toml"));
            let (c, overridden) = Config::with_vault(&found, file).map_err(|e| e.to_string())?;
            assert_eq!(c.kafka.brokers, "file-kafka:9092");
            assert_eq!(overridden, ["kafka.brokers"]);
            assert!(c.database_login_from_vault);
            jail.set_env("DATABASE_URL", "postgres://env-db/ss3");
            let (c, overridden) = Config::with_vault(&found, file).map_err(|e| e.to_string())?;
            assert_eq!(c.database_url.expose(), "postgres://env-db/ss3");
            assert_eq!(overridden, ["database_url", "kafka.brokers"]);
            jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env-collector:4318");
            let (c, overridden) = Config::with_vault(&found, file).map_err(|e| e.to_string())?;
            assert_eq!(c.telemetry.otlp_endpoint, "http://env-collector:4318");
            assert_eq!(c.telemetry.service_name, "integration-service-eu");
            assert_eq!(
                overridden,
                ["database_url", "kafka.brokers", "telemetry.otlp_endpoint"]
            );
            assert!(
                !c.database_login_from_vault,
                "a login set here is not followed in Vault"
            );
            Ok(())
        });
    }

    /// Catches: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_SERVICE_NAME` ignored (every other service of the platform is
    /// configured with them), or overriding the more specific `SS3_TELEMETRY__*`; or an endpoint that is not an
    /// http(s) URL accepted, to fail only when the first spans are sent.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn opentelemetrys_own_variables_are_honoured_below_ss3_ones() {
        let c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.telemetry.enabled(), "no export unless configured");
        assert_eq!(c.telemetry.service_name, "integration-service");
        figment::Jail::expect_with(|jail| {
            jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
            jail.set_env("OTEL_SERVICE_NAME", "ss3-integration");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.telemetry.enabled());
            assert_eq!(c.telemetry.otlp_endpoint, "http://collector:4318");
            assert_eq!(c.telemetry.service_name, "ss3-integration");
            jail.set_env("SS3_TELEMETRY__OTLP_ENDPOINT", "http://ss3-collector:4318");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.telemetry.otlp_endpoint, "http://ss3-collector:4318");
            jail.set_env("SS3_TELEMETRY__OTLP_ENDPOINT", "collector:4318");
            let refused = Config::load(None).err().map(|e| e.to_string());
            assert!(
                refused
                    .as_deref()
                    .is_some_and(|e| e.contains("telemetry.otlp_endpoint")),
                "{refused:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_lease_renewed_less_than_twice_per_lease_is_refused_naming_the_key() {
        let mut c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        c.worker.lease_renew_ms = c.worker.lease_ms / 2 + 1;
        let refused = c.validate().expect_err("refused");
        assert!(
            refused.to_string().contains("worker.lease_renew_ms"),
            "{refused}"
        );
    }

    #[test]
    fn the_connection_budget_is_split_between_the_roles_with_two_each_at_least() {
        let mut c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        c.max_db_connections = 20;
        let sizes = c.pool_sizes();
        assert_eq!(sizes.api + sizes.ingest + sizes.worker, 20);
        c.max_db_connections = 6;
        let small = c.pool_sizes();
        assert!(small.api >= 2 && small.ingest >= 2 && small.worker >= 2);
    }

    #[test]
    fn percentages_that_do_not_add_up_name_the_key() {
        let mut c = Config::defaults().unwrap_or_else(|e| panic!("{e}"));
        c.pools.api_percent = 90;
        let e = match c.validate() {
            Ok(()) => panic!("percentages adding up to 160 were accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("pools.api_percent"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
    }
}
