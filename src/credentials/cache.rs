//! The validation cache: bounded, TTL'd, evictable by credential id, refreshed ahead of expiry.
//!
//! A hit on an entry past half its TTL is told to refresh it (once per key at a time: the caller that gets
//! `refresh: true` owns the refresh until it calls [`ValidationCache::refreshed`]). The refresh re-reads the
//! database and re-runs bcrypt, and its result replaces the entry (with a new TTL) or removes it; so a key in steady
//! use never expires into the bcrypt gate, and what is served is never older than one TTL since it was last checked.

use std::collections::{HashMap, HashSet};
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
    /// A set, so a key refreshed many times is listed once.
    by_credential: HashMap<Uuid, HashSet<CacheKey>>,
    /// Keys whose refresh is in flight (single flight per key).
    refreshing: HashSet<CacheKey>,
    /// Bumped by every eviction: a check that read the database before an eviction must not insert after it.
    epoch: u64,
}

/// A cache hit.
pub struct Hit {
    /// The cached grant.
    pub grant: Grant,
    /// The entry is past half its TTL and this caller owns its refresh.
    pub refresh: bool,
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

    /// A fresh grant that is still within its own validity at `now`, and whether the caller should refresh it.
    pub fn get(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<Hit> {
        let hit = {
            let mut inner = self.lock();
            let found = inner
                .entries
                .get(key)
                .map(|(at, grant)| (at.elapsed(), grant))
                .filter(|(age, grant)| *age < self.ttl && grant.valid_until.is_none_or(|v| v > now))
                .map(|(age, grant)| (age >= self.ttl / 2, grant.clone()));
            found.map(|(due, grant)| Hit {
                grant,
                refresh: due && inner.refreshing.insert(*key),
            })
        };
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        hit
    }

    /// The current eviction epoch: take it before reading the database, and pass it to [`Self::insert`].
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Cache a grant read from the database at `epoch`; dropped if anything was evicted since (it may be stale).
    pub fn insert(&self, key: CacheKey, grant: Grant, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= self.max_entries {
            // Bounded: start over rather than track recency on the hot path.
            inner.entries.clear();
            inner.by_credential.clear();
        }
        inner
            .by_credential
            .entry(grant.credential_id)
            .or_default()
            .insert(key);
        inner.entries.insert(key, (Instant::now(), grant));
    }

    /// A refresh found the key no longer valid.
    pub fn remove(&self, key: &CacheKey) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.remove(key);
    }

    /// The refresh of `key` is over (whatever its outcome): the next hit past half the TTL may start another.
    pub fn refreshed(&self, key: &CacheKey) {
        self.lock().refreshing.remove(key);
    }

    pub fn evict(&self, credential_id: Uuid) {
        let mut inner = self.lock();
        inner.epoch += 1;
        if let Some(keys) = inner.by_credential.remove(&credential_id) {
            for key in keys {
                inner.entries.remove(&key);
            }
        }
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(credential_id: Uuid) -> Grant {
        Grant {
            credential_id,
            store_id: "store".into(),
            scopes: vec![],
            valid_until: None,
        }
    }

    #[test]
    fn a_grant_read_before_an_eviction_is_not_cached_after_it() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let id = Uuid::new_v4();
        let read_at = cache.epoch();
        cache.evict(id);
        cache.insert([1; 32], grant(id), read_at);
        assert!(cache.get(&[1; 32], Utc::now()).is_none(), "possibly stale");
        cache.insert([1; 32], grant(id), cache.epoch());
        let hit = cache.get(&[1; 32], Utc::now()).expect("cached");
        assert!(!hit.refresh, "a fresh entry is not refreshed");
    }

    #[test]
    fn a_key_refreshed_many_times_is_listed_once_for_eviction() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let id = Uuid::new_v4();
        for _ in 0..3 {
            cache.insert([2; 32], grant(id), cache.epoch());
        }
        assert_eq!(cache.lock().by_credential[&id].len(), 1);
        cache.evict(id);
        assert!(cache.get(&[2; 32], Utc::now()).is_none());
    }
}
