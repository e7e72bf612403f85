//! The validation cache on `moka`: bounded (least-useful entries evicted one by one, never all at once), each entry
//! expiring at its TTL or at its grant's own end, whichever is first, evictable by credential id, loaded once per key
//! however many requests present it together, and refreshed ahead of expiry.
//!
//! A hit on an entry past half its TTL is told to refresh it (once per key at a time: the caller that gets
//! `refresh: true` owns the refresh until it calls [`ValidationCache::refreshed`]). The refresh re-reads the
//! database, and its result replaces the entry (with a new TTL) or removes it; so a key in steady use never expires
//! into the bcrypt gate, and what is served is never older than one TTL since it was last checked.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;
use moka::future::Cache;
use workflows::ids::CredentialId;

use super::Verified;

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

/// A cached validation and when it was checked.
struct Entry {
    verified: Verified,
    checked_at: Instant,
}

/// Each entry lives for the TTL, or until its grant's `valid_until` if that comes first. A refresh-ahead re-insert
/// starts a new TTL (moka's default for an update keeps the old deadline, which would let a key in steady use
/// expire once per TTL and queue its re-check behind a flood).
struct UntilTtlOrValidity {
    ttl: Duration,
}

impl UntilTtlOrValidity {
    fn lifetime(&self, entry: &Entry) -> Duration {
        let left = entry
            .verified
            .grant
            .valid_until
            .map(|until| (until - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        left.map_or(self.ttl, |left| left.min(self.ttl))
    }
}

impl Expiry<CacheKey, Arc<Entry>> for UntilTtlOrValidity {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }
}

/// Why a load left nothing in the cache.
#[derive(Debug)]
enum NotCached {
    /// The credential is invalid: never cached, so a fixed credential works at once.
    Invalid,
    /// The check failed (gate full, database unreachable); shared by every caller that waited on it.
    Failed(anyhow::Error),
}

impl NotCached {
    /// The answer for one of the callers that shared this load: `None` (invalid), or the failure with every cause
    /// of the chain still there (the API answers an overloaded gate, an exhausted pool or an unreachable database
    /// with 503 by looking for them).
    fn for_caller(self: Arc<Self>) -> anyhow::Result<Option<Verified>> {
        match *self {
            Self::Invalid => Ok(None),
            Self::Failed(_) => Err(anyhow::Error::new(SharedFailure(self))),
        }
    }
}

/// A failed check as each caller that waited on it gets it: its cause is the check's own error, whole.
#[derive(Debug)]
struct SharedFailure(Arc<NotCached>);

impl std::fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the credential check failed")
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            NotCached::Failed(e) => Some(e.as_ref()),
            NotCached::Invalid => None,
        }
    }
}

/// A cache hit.
pub struct Hit {
    /// The cached validation.
    pub verified: Verified,
    /// The entry is past half its TTL and this caller owns its refresh.
    pub refresh: bool,
}

/// Successful validations only: a failure is never cached, so a fixed credential works at once.
pub struct ValidationCache {
    ttl: Duration,
    entries: Cache<CacheKey, Arc<Entry>>,
    /// Keys whose refresh is in flight (single flight per key): as many as refreshes running.
    refreshing: Mutex<HashSet<CacheKey>>,
    /// Bumped by every eviction: a check that read the database before an eviction must not stay cached after it.
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ValidationCache {
    /// A cache of at most `max_entries` validations, each reused for at most `ttl`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_entries as u64)
            .expire_after(UntilTtlOrValidity { ttl })
            .support_invalidation_closures()
            .build();
        Self {
            ttl,
            entries,
            refreshing: Mutex::default(),
            epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A fresh validation whose grant is still within its own validity at `now`, and whether the caller should
    /// refresh it.
    pub async fn get(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<Hit> {
        let entry = self.entries.get(key).await;
        let usable = entry.filter(|e| e.verified.grant.valid_until.is_none_or(|v| v > now));
        let Some(entry) = usable else {
            self.misses.fetch_add(1, Relaxed);
            return None;
        };
        self.hits.fetch_add(1, Relaxed);
        let due = entry.checked_at.elapsed() >= self.ttl / 2;
        let refresh = due && self.lock_refreshing().insert(*key);
        Some(Hit {
            verified: entry.verified.clone(),
            refresh,
        })
    }

    /// The validation of `key` by `check` (`Ok(None)`: invalid), run once for every caller that asks for `key`
    /// while it runs; a valid answer is cached unless an eviction happened meanwhile (it may be stale).
    pub async fn load<F>(&self, key: CacheKey, check: F) -> anyhow::Result<Option<Verified>>
    where
        F: Future<Output = anyhow::Result<Option<Verified>>>,
    {
        let epoch = self.epoch();
        let loaded = self
            .entries
            .try_get_with(key, async move {
                match check.await {
                    Ok(Some(verified)) => Ok(Arc::new(Entry {
                        verified,
                        checked_at: Instant::now(),
                    })),
                    Ok(None) => Err(NotCached::Invalid),
                    Err(e) => Err(NotCached::Failed(e)),
                }
            })
            .await;
        match loaded {
            Ok(entry) => {
                self.drop_if_evicted_since(&key, epoch).await;
                Ok(Some(entry.verified.clone()))
            }
            Err(not_cached) => not_cached.for_caller(),
        }
    }

    /// The current eviction epoch: take it before reading the database, and pass it to [`Self::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// Cache a validation read from the database at `epoch`; dropped if anything was evicted since (it may be stale).
    pub async fn insert(&self, key: CacheKey, verified: Verified, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        let entry = Entry {
            verified,
            checked_at: Instant::now(),
        };
        self.entries.insert(key, Arc::new(entry)).await;
        self.drop_if_evicted_since(&key, epoch).await;
    }

    /// An eviction that ran between the check of `epoch` and the insertion did not see the new entry: drop it.
    async fn drop_if_evicted_since(&self, key: &CacheKey, epoch: u64) {
        if self.epoch() != epoch {
            self.entries.invalidate(key).await;
        }
    }

    /// A refresh found the key no longer valid.
    pub async fn remove(&self, key: &CacheKey) {
        self.epoch.fetch_add(1, Relaxed);
        self.entries.invalidate(key).await;
    }

    /// The refresh of `key` is over (whatever its outcome): the next hit past half the TTL may start another.
    pub fn refreshed(&self, key: &CacheKey) {
        self.lock_refreshing().remove(key);
    }

    fn lock_refreshing(&self) -> std::sync::MutexGuard<'_, HashSet<CacheKey>> {
        self.refreshing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop every entry of `credential_id` (it changed): no lookup returns them from now on.
    pub fn evict(&self, credential_id: CredentialId) {
        self.epoch.fetch_add(1, Relaxed);
        let registered = self
            .entries
            .invalidate_entries_if(move |_, e| e.verified.grant.credential_id == credential_id);
        if let Err(e) = registered {
            // Only if the builder lacked `support_invalidation_closures`: fall back to dropping everything.
            tracing::error!(error = %e, "cannot evict by credential; clearing the validation cache");
            self.entries.invalidate_all();
        }
    }

    /// Drop every entry (notifications may have been missed).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Relaxed);
        self.entries.invalidate_all();
    }

    /// Hits and misses since start-up.
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
    use crate::credentials::Grant;

    fn grant(credential_id: CredentialId) -> Verified {
        Verified {
            grant: Grant {
                credential_id,
                store_id: "store".into(),
                scopes: vec![],
                valid_until: None,
            },
            hash: None,
        }
    }

    #[tokio::test]
    async fn a_grant_read_before_an_eviction_is_not_cached_after_it() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let id = CredentialId::new();
        let read_at = cache.epoch();
        cache.evict(id);
        cache.insert([1; 32], grant(id), read_at).await;
        assert!(
            cache.get(&[1; 32], Utc::now()).await.is_none(),
            "possibly stale"
        );
        cache.insert([1; 32], grant(id), cache.epoch()).await;
        let hit = cache.get(&[1; 32], Utc::now()).await.expect("cached");
        assert!(!hit.refresh, "a fresh entry is not refreshed");
    }

    /// Catches: eviction by credential missing one of its keys, or taking another credential's.
    #[tokio::test]
    async fn evicting_a_credential_drops_its_keys_only() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let (id, other) = (CredentialId::new(), CredentialId::new());
        for key in [[2; 32], [3; 32]] {
            cache.insert(key, grant(id), cache.epoch()).await;
        }
        cache.insert([4; 32], grant(other), cache.epoch()).await;
        cache.evict(id);
        assert!(cache.get(&[2; 32], Utc::now()).await.is_none());
        assert!(cache.get(&[3; 32], Utc::now()).await.is_none());
        assert!(cache.get(&[4; 32], Utc::now()).await.is_some());
    }

    /// Catches: concurrent misses of one key each running their own check (each a bcrypt), or an invalid answer
    /// being cached.
    #[tokio::test]
    async fn concurrent_loads_of_a_key_share_one_check_and_invalid_is_not_cached() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let checks = AtomicU64::new(0);
        let id = CredentialId::new();
        let check = || async {
            checks.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Some(grant(id)))
        };
        let (a, b) = tokio::join!(cache.load([5; 32], check()), cache.load([5; 32], check()));
        assert_eq!(
            (a.ok().flatten(), b.ok().flatten()),
            (Some(grant(id)), Some(grant(id)))
        );
        assert_eq!(checks.load(Relaxed), 1);
        let invalid = cache.load([6; 32], async { Ok(None) }).await;
        assert!(invalid.is_ok_and(|g| g.is_none()));
        assert!(cache.get(&[6; 32], Utc::now()).await.is_none());
    }

    /// Catches: a failed check losing its cause for the callers that shared it (the API would answer 500 where it
    /// answers an overloaded gate, an exhausted pool or an unreachable database with 503).
    #[tokio::test]
    async fn every_caller_of_a_failed_check_gets_its_causes() {
        let cache = ValidationCache::new(Duration::from_secs(60), 10);
        let failing = |cause: fn() -> anyhow::Error| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(cause().context("checking the key"))
        };
        let causes: [fn() -> anyhow::Error; 3] = [
            || super::super::Overloaded.into(),
            || sqlx::Error::PoolTimedOut.into(),
            || sqlx::Error::PoolClosed.into(),
        ];
        for (n, cause) in causes.into_iter().enumerate() {
            let key = [n as u8 + 10; 32];
            let (a, b) = tokio::join!(
                cache.load(key, failing(cause)),
                cache.load(key, failing(cause))
            );
            for e in [a.expect_err("failed"), b.expect_err("failed")] {
                let kept = e.chain().any(|c| {
                    c.is::<super::super::Overloaded>()
                        || c.downcast_ref::<sqlx::Error>().is_some_and(|e| {
                            matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
                        })
                });
                assert!(kept, "cause {n} lost: {e:#}");
            }
        }
    }

    /// Catches: a full cache dropping every entry (each live key then pays a bcrypt at once).
    #[tokio::test]
    async fn a_full_cache_keeps_most_entries() {
        let cache = ValidationCache::new(Duration::from_secs(60), 100);
        for i in 0..150u8 {
            cache
                .insert([i; 32], grant(CredentialId::new()), cache.epoch())
                .await;
        }
        cache.entries.run_pending_tasks().await;
        assert!(
            cache.entries.entry_count() >= 50,
            "{}",
            cache.entries.entry_count()
        );
        assert!(cache.entries.entry_count() <= 100);
    }
}
