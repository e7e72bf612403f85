//! Typed configuration: embedded documented defaults, an optional TOML file, then `SS3_` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

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
    /// HTTP listen address.
    pub listen_addr: SocketAddr,
    /// Postgres URL.
    pub database_url: Secret,
    /// Connections of this process in all, split between the roles by `pools`.
    pub max_db_connections: u32,
    /// Development or production.
    pub mode: Mode,
    /// Operator token.
    pub admin_token: Secret,
    /// `[kafka]`: brokers, topics and consumer group of event ingest.
    pub kafka: KafkaConfig,
    /// Outgoing webhooks.
    pub delivery: DeliveryConfig,
    /// Worker pool.
    pub worker: WorkerConfig,
    /// Secret store.
    pub secrets: SecretsConfig,
    /// API credentials.
    pub credentials: CredentialsConfig,
    /// Each role's share of `max_db_connections`.
    pub pools: PoolsConfig,
    /// `[vault]`: the OpenBao/Vault server holding secrets (empty address: the embedded store).
    pub vault: VaultConfig,
    /// Marketplace connectors.
    pub connectors: ConnectorsConfig,
    /// Limits of the API's HTTP server.
    pub http: HttpConfig,
}

/// `[http]`: what a client may cost the API's HTTP server.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Largest request body of every route but `POST /events` (which takes `kafka.max_message_bytes`).
    pub max_body_bytes: usize,
    /// Time to send a request's header block (and, on a kept-alive connection, to start the next request).
    pub header_read_timeout_ms: u64,
    /// Time to send a request's body, counted from the service's first read of it.
    pub body_read_timeout_ms: u64,
}

/// `[connectors]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorsConfig {
    /// Topic of records pulled from channels (`marketplace.order.received`).
    pub inbound_topic: String,
    /// Connect timeout to channel APIs.
    pub connect_timeout_ms: u64,
    /// Total time of one channel request.
    pub timeout_ms: u64,
    /// A `429 Retry-After` up to this long is waited out in place; longer fails the attempt with that delay.
    pub max_inline_wait_ms: u64,
    /// Poll interval of a new config that polls and does not set one.
    pub default_poll_interval_secs: u32,
    /// Hosts channel endpoints may resolve to in production mode even though they are not public.
    pub allowed_private_hosts: Vec<String>,
    /// `[connectors.amazon]`: SP-API and LWA URLs.
    pub amazon: jobs::connectors::amazon::Endpoints,
    /// `[connectors.ebay]`: API and token URLs.
    pub ebay: jobs::connectors::ebay::Endpoints,
    /// `[connectors.google_shopping]`: Merchant API and token URLs.
    pub google_shopping: jobs::connectors::google::Endpoints,
}

impl ConnectorsConfig {
    /// The channels' endpoints, as the adapters take them.
    pub fn endpoints(&self) -> jobs::connectors::ChannelEndpoints {
        jobs::connectors::ChannelEndpoints {
            amazon: self.amazon.clone(),
            ebay: self.ebay.clone(),
            google_shopping: self.google_shopping.clone(),
        }
    }
}

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaultConfig {
    /// Address; empty: embedded store.
    pub addr: String,
    /// A static Vault token; empty: log in with AppRole.
    pub token: Secret,
    /// AppRole mount.
    pub approle_mount: String,
    /// AppRole role id.
    pub role_id: Secret,
    /// AppRole secret id.
    pub secret_id: Secret,
    /// KV v2 mount.
    pub mount: String,
    /// Key prefix.
    pub prefix: String,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Read cache TTL.
    pub cache_ttl_secs: u64,
}

impl VaultConfig {
    /// Whether Vault is configured.
    pub fn enabled(&self) -> bool {
        !self.addr.trim().is_empty()
    }
}

/// `[credentials]`.
#[derive(Debug, Clone, Deserialize)]
pub struct CredentialsConfig {
    /// bcrypt cost.
    pub bcrypt_cost: u32,
    /// Validation cache TTL.
    pub cache_ttl_secs: u64,
    /// Validation cache bound.
    pub cache_max_entries: usize,
    /// `last_used_at` precision.
    pub last_used_precision_secs: u64,
    /// `last_used_at` flush interval.
    pub last_used_flush_secs: u64,
    /// Access token lifetime.
    pub access_token_ttl_secs: u64,
    /// Token the gateway must present to `/credentials/validate` (empty: none).
    pub gateway_token: Secret,
    /// bcrypt hashes computed at once; 0: the machine's available parallelism.
    pub verify_concurrency: usize,
    /// Checks that may wait for a turn beyond those running; more are answered 503 at once.
    pub verify_queue: usize,
    /// Longest wait for a turn before a check is answered 503.
    pub verify_wait_ms: u64,
    /// Nice value (0–19) of hashing threads: under load, the rest of the process gets the CPU first.
    pub verify_nice: i32,
}

/// `[pools]`: one Postgres pool per role, so no role can take another's connections.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolsConfig {
    /// Percent of `max_db_connections` for the HTTP API (every handler, validation, its NOTIFY listener).
    pub api_percent: u32,
    /// Percent for the Kafka consumer.
    pub ingest_percent: u32,
    /// Percent for the worker (claims, heartbeats, sweeps, the outbox relay, the embedded secret store).
    pub worker_percent: u32,
    /// How long an API request waits for a connection before it is answered 503 + `Retry-After`.
    pub api_acquire_timeout_ms: u64,
}

/// Connections of each role's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// The API's.
    pub api: u32,
    /// Ingest's.
    pub ingest: u32,
    /// The worker's.
    pub worker: u32,
}

/// Fewest connections of a role's pool: one for its NOTIFY listener, one for everything else.
pub const MIN_ROLE_CONNECTIONS: u32 = 2;

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

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty disables Kafka.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Static membership id (empty: dynamic).
    pub group_instance_id: String,
    /// Regex of topics to consume.
    pub topic_regex: String,
    /// Explicit topics to consume.
    pub topics: Vec<String>,
    /// Size limit of a message.
    pub max_message_bytes: usize,
    /// Messages per ingest transaction.
    pub batch_max: usize,
    /// Wait for a batch to fill.
    pub batch_linger_ms: u64,
    /// Broker-side fetch wait.
    pub fetch_wait_ms: u64,
    /// Topic of our own events.
    pub publish_topic: String,
    /// Topics to create at start-up.
    pub create_topics: Vec<String>,
    /// Their partitions.
    pub create_partitions: i32,
}

impl KafkaConfig {
    /// Whether Kafka is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryConfig {
    /// Connect timeout.
    pub connect_timeout_ms: u64,
    /// Total timeout.
    pub timeout_ms: u64,
    /// Response body limit.
    pub response_body_limit: usize,
    /// Private hosts allowed in production.
    pub allowed_private_hosts: Vec<String>,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    /// Concurrent jobs.
    pub concurrency: usize,
    /// Jobs per fetch.
    pub batch_size: usize,
    /// Idle poll interval.
    pub poll_interval_ms: u64,
    /// Heartbeat interval.
    pub heartbeat_interval_secs: u64,
    /// A claimed job whose lease was not renewed for this long is re-queued.
    pub lease_ms: u64,
    /// How often a worker renews the leases of the jobs it holds.
    pub lease_renew_ms: u64,
    /// How often each worker re-queues jobs whose lease expired.
    pub lease_rescue_ms: u64,
    /// Worker name (empty: generated).
    pub name: String,
    /// Scale of real waits between attempts.
    pub time_scale: f64,
    /// Wait when a secret is unavailable.
    pub secret_retry_secs: u64,
    /// Outbox relay poll interval.
    pub outbox_poll_ms: u64,
    /// How often finished jobs are swept from apalis.jobs.
    pub sweep_interval_secs: u64,
    /// How long acknowledged jobs stay in apalis.jobs.
    pub job_retention_secs: u64,
}

/// `[secrets]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretsConfig {
    /// Embedded master key (base64).
    pub master_key: Secret,
    /// Key file used when `master_key` is empty.
    pub key_file: PathBuf,
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
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        Self::from_figment(
            figment
                .merge(vault_env())
                .merge(Env::prefixed("SS3_").split("__"))
                .merge(Env::raw().only(&["DATABASE_URL"]).lowercase(true)),
        )
    }

    /// Defaults only (tests start from here and change fields).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Check ranges, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.worker.concurrency == 0 {
            return invalid("worker.concurrency", "must be at least 1");
        }
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size", "must be at least 1");
        }
        if self.worker.lease_renew_ms == 0 || self.worker.lease_renew_ms * 2 > self.worker.lease_ms
        {
            return invalid(
                "worker.lease_renew_ms",
                "must be at least 1 and at most half of worker.lease_ms",
            );
        }
        if self.worker.lease_rescue_ms == 0 {
            return invalid("worker.lease_rescue_ms", "must be at least 1");
        }
        if !(self.worker.time_scale > 0.0 && self.worker.time_scale <= 1.0) {
            return invalid("worker.time_scale", "must be in (0, 1]");
        }
        if !(4..=31).contains(&self.credentials.bcrypt_cost) {
            return invalid("credentials.bcrypt_cost", "must be between 4 and 31");
        }
        if self.http.max_body_bytes == 0 {
            return invalid("http.max_body_bytes", "must be at least 1");
        }
        if self.http.header_read_timeout_ms == 0 {
            return invalid("http.header_read_timeout_ms", "must be at least 1");
        }
        if self.http.body_read_timeout_ms == 0 {
            return invalid("http.body_read_timeout_ms", "must be at least 1");
        }
        let p = &self.pools;
        if p.api_percent + p.ingest_percent + p.worker_percent != 100 {
            return invalid(
                "pools.api_percent",
                "pools.api_percent + ingest_percent + worker_percent must be 100",
            );
        }
        if self.max_db_connections < 3 * MIN_ROLE_CONNECTIONS {
            return invalid(
                "max_db_connections",
                "must be at least 6 (two connections per role)",
            );
        }
        if !(0..=19).contains(&self.credentials.verify_nice) {
            return invalid("credentials.verify_nice", "must be between 0 and 19");
        }
        if self.credentials.verify_wait_ms == 0 {
            return invalid("credentials.verify_wait_ms", "must be at least 1");
        }
        if self.kafka.batch_max == 0 {
            return invalid("kafka.batch_max", "must be at least 1");
        }
        if self.kafka.enabled()
            && regex_is_empty(&self.kafka.topic_regex)
            && self.kafka.topics.is_empty()
        {
            return invalid(
                "kafka.topic_regex",
                "set a regex or kafka.topics when kafka.brokers is set",
            );
        }
        if !self.database_url.expose().starts_with("postgres") {
            return invalid("database_url", "must be a postgres:// URL");
        }
        for (key, url) in self.connectors.endpoints().urls() {
            let parsed = url::Url::parse(url).ok();
            if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return invalid(key, "must be an absolute http(s) URL");
            }
        }
        Ok(())
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

fn regex_is_empty(s: &str) -> bool {
    s.trim().is_empty()
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
        assert_eq!(
            c.connectors.endpoints(),
            jobs::connectors::ChannelEndpoints::default()
        );
        for (key, url) in c.connectors.endpoints().urls() {
            assert!(url.starts_with("https://"), "{key} = {url}");
        }
    }

    /// Catches: `VAULT_ADDR` / `VAULT_TOKEN` documented as honoured but never read (the service then silently used
    /// the embedded store), or overriding the more specific `SS3_VAULT__*`.
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
