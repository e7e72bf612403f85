//! Secrets in Vault (or OpenBao), KV v2: `{mount}/{prefix}/webhook/{subscription_id}/secret`, and
//! `{mount}/{prefix}/connector/{config_id}/api-key|api-secret`. Token or AppRole auth, renewed before expiry.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{SecretStore, SecretStoreError};
use crate::config::VaultConfig;

/// How the service logs in.
#[derive(Clone)]
pub enum VaultAuth {
    /// A token (dev servers, or one issued by an agent).
    Token(String),
    /// AppRole: `auth/{mount}/login` with a role id and secret id.
    AppRole {
        mount: String,
        role_id: String,
        secret_id: String,
    },
}

/// Vault-backed secret store.
pub struct VaultSecretStore {
    client: RwLock<VaultClient>,
    auth: VaultAuth,
    mount: String,
    prefix: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    value: String,
}

fn unavailable(e: ClientError) -> SecretStoreError {
    SecretStoreError::Unavailable(e.to_string())
}

impl VaultSecretStore {
    /// Connect and log in. Fails if Vault cannot be reached or refuses the credentials.
    pub async fn connect(config: &VaultConfig) -> anyhow::Result<Self> {
        let auth = if !config.role_id.expose().is_empty() {
            VaultAuth::AppRole {
                mount: config.approle_mount.clone(),
                role_id: config.role_id.expose().to_owned(),
                secret_id: config.secret_id.expose().to_owned(),
            }
        } else {
            VaultAuth::Token(config.token.expose().to_owned())
        };
        let settings = VaultClientSettingsBuilder::default()
            .address(&config.addr)
            .token(match &auth {
                VaultAuth::Token(t) => t.clone(),
                VaultAuth::AppRole { .. } => String::new(),
            })
            .timeout(Some(Duration::from_millis(config.timeout_ms)))
            .build()?;
        let store = Self {
            client: RwLock::new(VaultClient::new(settings)?),
            auth,
            mount: config.mount.clone(),
            prefix: config.prefix.trim_matches('/').to_owned(),
        };
        store.login().await?;
        Ok(store)
    }

    /// Log in again (AppRole) or check the token (token auth). Returns the token's TTL, if it expires.
    async fn login(&self) -> anyhow::Result<Option<Duration>> {
        match &self.auth {
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let info = {
                    let client = self.client.read().await;
                    vaultrs::auth::approle::login(&*client, mount, role_id, secret_id).await?
                };
                self.client.write().await.set_token(&info.client_token);
                Ok((info.lease_duration > 0).then(|| Duration::from_secs(info.lease_duration)))
            }
            VaultAuth::Token(_) => {
                let client = self.client.read().await;
                let me = vaultrs::token::lookup_self(&*client).await?;
                Ok((me.ttl > 0).then(|| Duration::from_secs(me.ttl)))
            }
        }
    }

    /// Every field of the KV v2 secret at `<mount>/<path>` (outside this service's prefix: the platform's start-up
    /// configuration has paths of its own), values that are not strings as JSON text; `None` when there is none.
    pub async fn read_fields(
        &self,
        path: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SecretStoreError> {
        let client = self.client.read().await;
        let path = path.trim_matches('/');
        match vaultrs::kv2::read::<BTreeMap<String, Value>>(&*client, &self.mount, path).await {
            Ok(fields) => Ok(Some(
                fields
                    .into_iter()
                    .map(|(key, value)| match value {
                        Value::String(text) => (key, text),
                        other => (key, other.to_string()),
                    })
                    .collect(),
            )),
            Err(ClientError::APIError { code: 404, .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn full_path(&self, path: &str) -> String {
        format!("{}/{}", self.prefix, path.trim_matches('/'))
    }

    /// Keep the token alive: renew at two thirds of its TTL; log in again (AppRole) when renewal fails.
    pub async fn keep_token_alive(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        let mut ttl = self.login().await.ok().flatten();
        loop {
            let wait = ttl.map_or(Duration::from_secs(300), |t| {
                (t * 2 / 3).max(Duration::from_secs(5))
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            if ttl.is_none() {
                continue; // a root or non-expiring token
            }
            let renewed = {
                let client = self.client.read().await;
                vaultrs::token::renew_self(&*client, None).await
            };
            ttl = match renewed {
                Ok(info) => Some(Duration::from_secs(info.lease_duration.max(1))),
                Err(e) => {
                    tracing::warn!(error = %e, "Vault token renewal failed; logging in again");
                    self.login()
                        .await
                        .ok()
                        .flatten()
                        .or(Some(Duration::from_secs(30)))
                }
            };
        }
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    async fn get(&self, path: &str) -> Result<Option<String>, SecretStoreError> {
        let client = self.client.read().await;
        match vaultrs::kv2::read::<Stored>(&*client, &self.mount, &self.full_path(path)).await {
            Ok(stored) => Ok(Some(stored.value)),
            Err(ClientError::APIError { code: 404, .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put(&self, path: &str, value: &str) -> Result<(), SecretStoreError> {
        let client = self.client.read().await;
        vaultrs::kv2::set(
            &*client,
            &self.mount,
            &self.full_path(path),
            &Stored {
                value: value.to_owned(),
            },
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<(), SecretStoreError> {
        let client = self.client.read().await;
        match vaultrs::kv2::delete_metadata(&*client, &self.mount, &self.full_path(path)).await {
            Ok(()) | Err(ClientError::APIError { code: 404, .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ready(&self) -> bool {
        // Not sys/health: vaultrs 0.8 cannot parse OpenBao's answer (no `performance_standby`). Looking up our own
        // token also proves it is still valid.
        let client = self.client.read().await;
        vaultrs::token::lookup_self(&*client).await.is_ok()
    }
}
