//! Where signing secrets and connector credentials live: the embedded encrypted store, or Vault.

pub mod cached;
pub mod embedded;
pub mod migrate;
pub mod vault;

use std::sync::Arc;

use async_trait::async_trait;
use jobs::ports::{SecretError, SigningSecrets};
use workflows::ids::{ConnectorId, SubscriptionId};

/// Why the secret store failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// The store cannot be reached now; callers wait and retry.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// A stored value cannot be decrypted or decoded (wrong master key, corruption).
    #[error("secret store: {0}")]
    Corrupt(String),
}

/// A key-value store for secrets, addressed by path (`webhook/{id}/secret`).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Read a secret; `None` if absent.
    async fn get(&self, path: &str) -> Result<Option<String>, SecretStoreError>;
    /// Write (or replace) a secret.
    async fn put(&self, path: &str, value: &str) -> Result<(), SecretStoreError>;
    /// Remove a secret.
    async fn delete(&self, path: &str) -> Result<(), SecretStoreError>;
    /// Whether the store answers (for `/ready`).
    async fn ready(&self) -> bool;
}

/// Path of a connector credential (`api-key` or `api-secret`).
pub fn connector_secret_path(config_id: ConnectorId, name: &str) -> String {
    format!("connector/{config_id}/{name}")
}

/// Path of a subscription's signing secret.
pub fn webhook_secret_path(subscription_id: SubscriptionId) -> String {
    format!("webhook/{subscription_id}/secret")
}

/// Where version `version` of a subscription's signing secret lives: version 0 (made with the subscription) at
/// [`webhook_secret_path`], each rotation's at a path of its own, so no cache can serve a rotated secret as current.
pub fn webhook_secret_version_path(subscription_id: SubscriptionId, version: i32) -> String {
    if version == 0 {
        webhook_secret_path(subscription_id)
    } else {
        format!("webhook/{subscription_id}/secret-v{version}")
    }
}

/// The delivery worker's view of the secret store.
pub struct StoreSigningSecrets(pub Arc<dyn SecretStore>);

#[async_trait]
impl SigningSecrets for StoreSigningSecrets {
    async fn signing_secret(
        &self,
        subscription_id: SubscriptionId,
        version: i32,
    ) -> Result<String, SecretError> {
        match self
            .0
            .get(&webhook_secret_version_path(subscription_id, version))
            .await
        {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(SecretError::NotFound),
            Err(SecretStoreError::Unavailable(why)) => Err(SecretError::Unavailable(why)),
            Err(SecretStoreError::Corrupt(why)) => Err(SecretError::Unavailable(why)),
        }
    }
}

/// A new signing secret from the OS CSPRNG (256 bits).
pub fn new_signing_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    workflows::signing::secret_from_bytes(&bytes)
}
