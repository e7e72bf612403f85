//! A short-lived in-process cache in front of a secret store: signing reads the secret on every delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{SecretStore, SecretStoreError};

/// Caches successful reads for `ttl`; writes and deletes through this process invalidate at once.
/// Another process's change is seen within `ttl` (the documented staleness bound).
pub struct CachedSecretStore {
    inner: Arc<dyn SecretStore>,
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl CachedSecretStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn SecretStore>, ttl: Duration, max_entries: usize) -> Self {
        Self {
            inner,
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, path: &str) -> Option<Option<String>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(path)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, path: &str, value: Option<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries {
            // Bounded: dropping everything is crude but O(1) amortised and keeps memory flat.
            entries.clear();
        }
        entries.insert(path.to_owned(), (Instant::now(), value));
    }

    fn forget(&self, path: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
    }
}

#[async_trait]
impl SecretStore for CachedSecretStore {
    async fn get(&self, path: &str) -> Result<Option<String>, SecretStoreError> {
        if let Some(hit) = self.cached(path) {
            return Ok(hit);
        }
        let value = self.inner.get(path).await?;
        self.remember(path, value.clone());
        Ok(value)
    }

    async fn put(&self, path: &str, value: &str) -> Result<(), SecretStoreError> {
        self.forget(path);
        self.inner.put(path, value).await
    }

    async fn delete(&self, path: &str) -> Result<(), SecretStoreError> {
        self.forget(path);
        self.inner.delete(path).await
    }

    async fn ready(&self) -> bool {
        self.inner.ready().await
    }
}
