//! The validation cache: bounded, TTL'd, evictable by credential id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Grant;

/// HMAC of the presented token under a per-process key: the raw token is never kept in memory.
pub type CacheKey = [u8; 32];

/// Hit/miss counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Validations answered from the cache.
    pub hits: u64,
    /// Validations that went to the database.
    pub misses: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, (Instant, Grant)>,
    by_credential: HashMap<Uuid, Vec<CacheKey>>,
}

/// Successful validations only: a failure is never cached, so a fixed credential works at once.
pub struct ValidationCache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ValidationCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh grant that is still within its own validity at `now`.
    pub fn get(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<Grant> {
        let hit = {
            let inner = self.lock();
            inner
                .entries
                .get(key)
                .filter(|(at, grant)| {
                    at.elapsed() < self.ttl && grant.valid_until.is_none_or(|v| v > now)
                })
                .map(|(_, grant)| grant.clone())
        };
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        hit
    }

    pub fn insert(&self, key: CacheKey, grant: Grant) {
        let mut inner = self.lock();
        if inner.entries.len() >= self.max_entries {
            // Bounded: start over rather than track recency on the hot path.
            inner.entries.clear();
            inner.by_credential.clear();
        }
        inner
            .by_credential
            .entry(grant.credential_id)
            .or_default()
            .push(key);
        inner.entries.insert(key, (Instant::now(), grant));
    }

    pub fn evict(&self, credential_id: Uuid) {
        let mut inner = self.lock();
        if let Some(keys) = inner.by_credential.remove(&credential_id) {
            for key in keys {
                inner.entries.remove(&key);
            }
        }
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.by_credential.clear();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        }
    }
}
