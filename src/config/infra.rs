//! The tables of the configuration that say where the service's dependencies are: `[kafka]`, `[vault]`,
//! `[secrets]` and `[pools]` (how the Postgres connection budget is split).

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// `[kafka]`: the consumer of domain events and the topic our own events go to.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty disables Kafka.
    pub brokers: String,
    /// Consumer group of the ingest role.
    pub group_id: String,
    /// Static membership id (empty: dynamic).
    pub group_instance_id: String,
    /// Regex of topics to consume.
    pub topic_regex: String,
    /// Explicit topics to consume.
    pub topics: Vec<String>,
    /// Largest message ingested; larger ones are quarantined.
    pub max_message_bytes: usize,
    /// Messages per ingest transaction.
    pub batch_max: usize,
    /// How long a batch waits to fill after its first message (0: it takes what the consumer already holds).
    pub batch_linger_ms: u64,
    /// Broker-side fetch wait.
    pub fetch_wait_ms: u64,
    /// How long a partition may give nothing after being assigned or sought before ingest seeks back before its
    /// stored offset (tansu answers nothing to a fetch inside its last record batch; see `ingest::quiet`).
    pub stall_check_ms: u64,
    /// Topic of each event type we publish (the outbox relay publishes there); unmapped: a topic named after it.
    pub publish_topics: std::collections::BTreeMap<String, String>,
    /// Topics to create at start-up (tansu does not create them on first use).
    pub create_topics: Vec<String>,
    /// Partitions of each topic created at start-up.
    pub create_partitions: i32,
}

impl KafkaConfig {
    /// Whether Kafka is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }
}

/// `[vault]`: OpenBao/Vault as the secret store (instead of the embedded one).
#[derive(Debug, Clone, Deserialize)]
pub struct VaultConfig {
    /// Address of the Vault server; empty: the embedded store.
    pub addr: String,
    /// Token to log in with (when AppRole is not configured).
    pub token: Secret,
    /// Mount of the AppRole auth method.
    pub approle_mount: String,
    /// AppRole role id (with `secret_id`, preferred over `token`).
    pub role_id: Secret,
    /// AppRole secret id.
    pub secret_id: Secret,
    /// Mount of the KV v2 secrets engine.
    pub mount: String,
    /// Prefix of every key this service writes.
    pub prefix: String,
    /// Timeout of one Vault request.
    pub timeout_ms: u64,
    /// How long a read is reused before Vault is asked again.
    pub cache_ttl_secs: u64,
    /// Path (under `mount`) of the settings every service of the platform shares (the Kafka bootstrap servers).
    pub shared_path: String,
    /// How often the database login is read again from Vault (when it came from there), to follow a rotation.
    pub refresh_secs: u64,
}

impl VaultConfig {
    /// Whether Vault is configured.
    pub fn enabled(&self) -> bool {
        !self.addr.trim().is_empty()
    }
}

/// `[secrets]`: the embedded secret store's master key.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretsConfig {
    /// Embedded master key (base64).
    pub master_key: Secret,
    /// Key file used when `master_key` is empty.
    pub key_file: PathBuf,
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
    /// Connections of the HTTP API's pool.
    pub api: u32,
    /// Connections of the Kafka consumer's pool.
    pub ingest: u32,
    /// Connections of the worker's pool.
    pub worker: u32,
}

/// Fewest connections of a role's pool: one for its NOTIFY listener, one for everything else.
pub const MIN_ROLE_CONNECTIONS: u32 = 2;
