//! Start-up configuration from Vault, at the platform's paths: the database login in the service's own secret
//! (`<vault.mount>/<vault.prefix>`, keys `db.url`, `db.username`, `db.password`) and the settings every service
//! shares (`<vault.mount>/<vault.shared_path>`: `kafka.bootstrap.servers`, and the OpenTelemetry settings
//! `otel.exporter.otlp.endpoint` and `otel.service.name`). They sit between the embedded defaults and the config
//! file: the file and the environment still override them.

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::Serialized;
use serde_json::{Value, json};

use super::{Secret, VaultConfig};
use crate::secrets::vault::VaultSecretStore;

/// Keys of the service's own secret.
pub const DB_URL: &str = "db.url";
/// The database user, set on `db.url`.
pub const DB_USERNAME: &str = "db.username";
/// The database password, set on `db.url`.
pub const DB_PASSWORD: &str = "db.password";
/// Key of the shared secret: the Kafka bootstrap servers, as Kafka clients name them.
pub const KAFKA_BOOTSTRAP_SERVERS: &str = "kafka.bootstrap.servers";
/// Key of the shared secret: the OTLP receiver's base URL, as OpenTelemetry SDKs name it
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub const OTEL_ENDPOINT: &str = "otel.exporter.otlp.endpoint";
/// Key of the shared secret: the spans' `service.name` (`OTEL_SERVICE_NAME`).
pub const OTEL_SERVICE_NAME: &str = "otel.service.name";

/// The keys of the shared secret, each with the configuration key it sets.
const SHARED: [(&str, &str); 3] = [
    (KAFKA_BOOTSTRAP_SERVERS, "kafka.brokers"),
    (OTEL_ENDPOINT, "telemetry.otlp_endpoint"),
    (OTEL_SERVICE_NAME, "telemetry.service_name"),
];

/// What Vault holds for this service at start-up, as configuration keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FromVault {
    /// `database_url`, from `db.url` with `db.username` and `db.password` set on it.
    pub database_url: Option<Secret>,
    /// `kafka.brokers`, from `kafka.bootstrap.servers`.
    pub kafka_brokers: Option<String>,
    /// `telemetry.otlp_endpoint`, from `otel.exporter.otlp.endpoint`.
    pub otlp_endpoint: Option<String>,
    /// `telemetry.service_name`, from `otel.service.name`.
    pub service_name: Option<String>,
}

impl FromVault {
    /// Read both secrets (absent ones give nothing; Vault unreachable or a malformed value is an error).
    pub async fn read(vault: &VaultStore<'_>) -> anyhow::Result<Self> {
        let shared = vault.fields(&vault.config.shared_path).await?;
        Ok(Self {
            database_url: vault.database_url().await?,
            ..Self::shared(&shared)
        })
    }

    /// What the shared secret's `fields` set.
    fn shared(fields: &BTreeMap<String, String>) -> Self {
        let [kafka, endpoint, service] = SHARED.map(|(key, _)| fields.get(key).cloned());
        Self {
            database_url: None,
            kafka_brokers: kafka,
            otlp_endpoint: endpoint,
            service_name: service,
        }
    }

    /// The shared values found, each with its configuration key (`table.key`).
    fn shared_values(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let values = [&self.kafka_brokers, &self.otlp_endpoint, &self.service_name];
        SHARED
            .into_iter()
            .zip(values)
            .filter_map(|((_, key), value)| Some((key, value.as_ref()?)))
    }

    /// The configuration keys found, as a figment layer.
    pub fn layer(&self) -> Serialized<Value> {
        let mut keys = serde_json::Map::new();
        if let Some(url) = &self.database_url {
            keys.insert("database_url".into(), json!(url.expose()));
        }
        for (key, value) in self.shared_values() {
            let (table, name) = key.split_once('.').unwrap_or((key, ""));
            let table = keys.entry(table).or_insert_with(|| json!({}));
            table[name] = json!(value);
        }
        Serialized::defaults(Value::Object(keys))
    }

    /// The keys found, by configuration name.
    pub fn keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.database_url.is_some() {
            keys.push("database_url");
        }
        keys.extend(self.shared_values().map(|(key, _)| key));
        keys
    }

    /// Those of [`keys`](Self::keys) that `overrides` (the file and environment layers) also set.
    pub fn overridden(&self, overrides: &Figment) -> Vec<&'static str> {
        self.keys()
            .into_iter()
            .filter(|key| overrides.find_value(key).is_ok())
            .collect()
    }
}

/// A logged-in Vault and the `[vault]` settings that name the paths.
pub struct VaultStore<'a> {
    /// The client.
    pub store: &'a VaultSecretStore,
    /// Where the secrets are.
    pub config: &'a VaultConfig,
}

impl VaultStore<'_> {
    /// `database_url` from the service's own secret (what a rotation changes), if it has `db.url`.
    pub async fn database_url(&self) -> anyhow::Result<Option<Secret>> {
        database_url(&self.fields(&self.config.prefix).await?)
    }

    async fn fields(&self, path: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let fields = self.store.read_fields(path).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot read the start-up configuration at {}/{path} in Vault: {e}",
                self.config.mount
            )
        })?;
        Ok(fields.unwrap_or_default())
    }
}

/// `db.url` (a `postgres://` URL, or the JDBC form `jdbc:postgresql://…` other services of the platform read) with
/// the user and password of the secret set on it. A user or password without a URL is refused: it would be
/// silently ignored.
fn database_url(fields: &BTreeMap<String, String>) -> anyhow::Result<Option<Secret>> {
    let Some(raw) = fields.get(DB_URL) else {
        if fields.contains_key(DB_USERNAME) || fields.contains_key(DB_PASSWORD) {
            anyhow::bail!("Vault has {DB_USERNAME} or {DB_PASSWORD} but no {DB_URL}");
        }
        return Ok(None);
    };
    let raw = raw.strip_prefix("jdbc:").unwrap_or(raw);
    // Never the value in the message: it may carry a password.
    let mut url =
        url::Url::parse(raw).map_err(|e| anyhow::anyhow!("{DB_URL} in Vault is not a URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        anyhow::bail!("{DB_URL} in Vault is not a postgres:// URL");
    }
    if let Some(user) = fields.get(DB_USERNAME) {
        url.set_username(user)
            .map_err(|()| anyhow::anyhow!("{DB_URL} in Vault cannot carry a user"))?;
    }
    if let Some(password) = fields.get(DB_PASSWORD) {
        url.set_password(Some(password))
            .map_err(|()| anyhow::anyhow!("{DB_URL} in Vault cannot carry a password"))?;
    }
    Ok(Some(Secret::new(String::from(url))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Catches: the login of the secret dropped, a JDBC URL refused, or a password with URL syntax in it
    /// breaking the URL (it must be percent-encoded).
    #[test]
    fn the_database_url_carries_the_secrets_login_percent_encoded() {
        let url = database_url(&fields(&[
            (DB_URL, "jdbc:postgresql://db.internal:5432/integration"),
            (DB_USERNAME, "svc"),
            (DB_PASSWORD, "p@ss/word:#1"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a URL"));
        assert_eq!(
            url.expose(),
            "postgresql://svc:p%40ss%2Fword%3A%231@db.internal:5432/integration"
        );
        let parsed: sqlx::postgres::PgConnectOptions =
            url.expose().parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.get_username(), "svc");
    }

    /// Catches: an OpenTelemetry setting of the shared secret read under another name (the platform's keys are
    /// the SDKs' variables in lower case with dots), or set on the wrong configuration key.
    #[test]
    fn the_shared_secrets_kafka_and_opentelemetry_keys_map_to_their_configuration_keys() {
        let found = FromVault::shared(&fields(&[
            (KAFKA_BOOTSTRAP_SERVERS, "kafka-0:9092"),
            (OTEL_ENDPOINT, "http://otel-collector:4318"),
            (OTEL_SERVICE_NAME, "integration-service"),
            ("otel.unrelated", "ignored"),
        ]));
        assert_eq!(
            found.keys(),
            [
                "kafka.brokers",
                "telemetry.otlp_endpoint",
                "telemetry.service_name"
            ]
        );
        let layer = figment::Figment::from(found.layer());
        let endpoint: String = layer
            .extract_inner("telemetry.otlp_endpoint")
            .unwrap_or_default();
        assert_eq!(endpoint, "http://otel-collector:4318");
        let brokers: String = layer.extract_inner("kafka.brokers").unwrap_or_default();
        assert_eq!(brokers, "kafka-0:9092");
        let only_kafka = FromVault::shared(&fields(&[(KAFKA_BOOTSTRAP_SERVERS, "k:9092")]));
        assert_eq!(only_kafka.keys(), ["kafka.brokers"]);
    }

    /// Catches: a half-configured login silently ignored, or a value echoed into an error message.
    #[test]
    fn a_login_without_a_url_or_a_non_postgres_url_is_refused_without_echoing_it() {
        let no_url = database_url(&fields(&[(DB_PASSWORD, "hunter2")]));
        assert!(no_url.is_err_and(|e| !e.to_string().contains("hunter2")));
        let mysql = database_url(&fields(&[(DB_URL, "mysql://u:hunter2@h/db")]));
        assert!(mysql.is_err_and(|e| !e.to_string().contains("hunter2")));
        assert_eq!(database_url(&fields(&[])).ok(), Some(None));
    }
}
