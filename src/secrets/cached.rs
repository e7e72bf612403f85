//! A short-lived in-process cache in front of a secret store, on `moka`: signing reads the secret on every delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;

use super::{SecretStore, SecretStoreError};

/// Caches successful reads (a missing secret too) for `ttl`, at most `max_entries` of them, evicting the least
/// useful one by one; concurrent reads of one path share one read of the store. Writes and deletes through this
/// process invalidate at once; another process's change is seen within `ttl` (the documented staleness bound).
/// Failed reads are never cached.
pub struct CachedSecretStore {
    inner: Arc<dyn SecretStore>,
    entries: Cache<String, Option<String>>,
}

impl CachedSecretStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn SecretStore>, ttl: Duration, max_entries: usize) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_entries as u64)
            .time_to_live(ttl)
            .build();
        Self { inner, entries }
    }
}

/// A failure shared by every reader that waited on one read, for one of them.
fn copy_of(e: &SecretStoreError) -> SecretStoreError {
    match e {
        SecretStoreError::Unavailable(why) => SecretStoreError::Unavailable(why.clone()),
        SecretStoreError::Corrupt(why) => SecretStoreError::Corrupt(why.clone()),
    }
}

#[async_trait]
impl SecretStore for CachedSecretStore {
    async fn get(&self, path: &str) -> Result<Option<String>, SecretStoreError> {
        self.entries
            .try_get_with_by_ref(path, self.inner.get(path))
            .await
            .map_err(|shared| copy_of(&shared))
    }

    async fn put(&self, path: &str, value: &str) -> Result<(), SecretStoreError> {
        self.entries.invalidate(path).await;
        self.inner.put(path, value).await
    }

    async fn delete(&self, path: &str) -> Result<(), SecretStoreError> {
        self.entries.invalidate(path).await;
        self.inner.delete(path).await
    }

    async fn ready(&self) -> bool {
        self.inner.ready().await
    }
}
