//! Validating API keys and OAuth access tokens: the API gateway's hot path.
//!
//! parse → cache (keyed hash of the presented token; no permit, no connection) → indexed lookup by the public part,
//! batched with the lookups of the same few milliseconds (`lookup`), connection released → unknown prefix: invalid, no bcrypt → a place at the bcrypt gate (or `Overloaded` when none
//! frees up in time) → bcrypt on a low-priority thread under the gate → active/expiry → coalesced `last_used_at` →
//! answer. A failed check is answered no sooner than `failure_delay` after it arrived (see below). Changes evict
//! cache entries at once in this process, and in every other process through Postgres NOTIFY; the cache TTL bounds
//! staleness if a notification is missed.
//!
//! Refresh-ahead: a hit on an entry past half its TTL answers from the cache and starts one background re-check of
//! that key: the same indexed lookup, and no bcrypt. An entry remembers the hash its secret matched, and bcrypt is
//! a pure function of secret and hash: while the row still accepts that hash (current, or previous within its
//! grace period), is active and unexpired, the secret still matches, so the refresh never queues at the gate behind
//! a flood. Success re-caches it for a full TTL; anything else (rotated away, deactivated, expired, deleted) removes
//! it, and the next request checks the key in full. A database error leaves it to expire at its TTL, the next hit
//! trying again. A key in steady use thus never falls back to the gate, where a flood would shed it with 503.
//!
//! The failure floor: every failed check (malformed, unknown prefix, wrong secret, inactive, expired) is answered
//! `failure_delay` after it arrived, not before. Response times then do not tell an unknown prefix (a lookup) from a
//! known one with a wrong secret (a lookup and bcrypt) as long as the check takes less than the floor, without
//! hashing against a dummy for every random key; and a client re-sending as soon as it is answered gets at most one
//! failure per connection and floor. A flood of random keys thus costs a share of one batched lookup and no bcrypt,
//! and is answered `valid: false`, never shed. Keys with a real prefix and wrong secrets do reach bcrypt, and the
//! gate bounds them (503 + Retry-After past its limits). There is deliberately no negative cache of unknown prefixes:
//! a flood of random keys brings a new prefix with every request, so it would never hit, and a missed NOTIFY would
//! refuse a newly created key for the cache's lifetime.

mod background;
mod cache;
mod gate;
mod lookup;
mod touch;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use workflows::credentials::{Presented, parse_presented};
use workflows::ids::CredentialId;

pub use cache::CacheStats;
use cache::{CacheKey, Hit, ValidationCache};
pub use gate::{GateLimits, Overloaded};
use gate::{HashGate, Ticket};
use lookup::Batched;
use touch::Touches;

use crate::db::credentials as repo;

/// What a valid credential grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The credential (for an access token: its OAuth client).
    pub credential_id: CredentialId,
    /// Its store.
    pub store_id: String,
    /// Its scopes (for an access token: the token's).
    pub scopes: Vec<String>,
    /// When it stops being valid (credential expiry, or the access token's).
    pub valid_until: Option<DateTime<Utc>>,
}

/// A successful validation, as cached: the grant, and for an API key the bcrypt hash its secret matched (what a
/// refresh checks the row still accepts, instead of hashing again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    grant: Grant,
    hash: Option<String>,
}

/// The hashes a row accepts at `now`: its current secret's, and its previous secret's during the grace period.
fn accepted_hashes(row: &repo::SecretRow, now: DateTime<Utc>) -> Vec<&String> {
    let mut hashes = vec![&row.hashed_secret];
    if let (Some(previous), Some(until)) = (&row.previous_hashed_secret, row.previous_valid_until)
        && until > now
    {
        hashes.push(previous);
    }
    hashes
}

/// Whether the row may grant anything at `now`, whatever secret was presented.
fn usable(row: &repo::SecretRow, now: DateTime<Utc>) -> bool {
    row.is_active && row.expires_at.is_none_or(|e| e > now)
}

impl From<repo::SecretRow> for Grant {
    fn from(row: repo::SecretRow) -> Self {
        Self {
            credential_id: row.credential_id,
            store_id: row.store_id,
            scopes: row.scopes,
            valid_until: row.expires_at,
        }
    }
}

/// Marks a key's refresh over when dropped, whatever happened to it (even a panic).
struct RefreshDone(Arc<ValidationCache>, CacheKey);

impl Drop for RefreshDone {
    fn drop(&mut self) {
        self.0.refreshed(&self.1);
    }
}

/// Validation settings.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    /// bcrypt cost of new hashes.
    pub bcrypt_cost: u32,
    /// A failed check is answered no sooner than this after it arrived.
    pub failure_delay: Duration,
    /// How long a lookup of an uncached key or token waits for others to share its statement.
    pub lookup_batch: Duration,
    /// How long a successful validation is reused.
    pub cache_ttl: Duration,
    /// Most entries kept.
    pub cache_max_entries: usize,
    /// `last_used_at` is written at most once per credential per this.
    pub last_used_precision: Duration,
    /// Bounds of bcrypt work (verification and hashing of new secrets).
    pub gate: GateLimits,
}

/// Validates presented credentials. Cheap to clone.
#[derive(Clone)]
pub struct Validator {
    pool: PgPool,
    /// API keys and OAuth clients by client id.
    keys: Batched<String, repo::SecretRow>,
    /// Access tokens by the SHA-256 of the token.
    tokens: Batched<Vec<u8>, repo::TokenRow>,
    cache: Arc<ValidationCache>,
    touches: Arc<Touches>,
    key: Arc<[u8; 32]>,
    gate: HashGate,
    settings: ValidatorSettings,
    /// True while this process LISTENs for other processes' credential changes (its cache is then trustworthy).
    listening: Arc<tokio::sync::watch::Sender<bool>>,
}

fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Validator {
    /// A validator.
    pub async fn new(pool: PgPool, settings: ValidatorSettings) -> anyhow::Result<Self> {
        let gate = HashGate::new(settings.gate);
        tracing::debug!(
            bcrypt_concurrency = gate.concurrency(),
            "credential checks bounded"
        );
        Ok(Self {
            cache: Arc::new(ValidationCache::new(
                settings.cache_ttl,
                settings.cache_max_entries,
            )),
            touches: Arc::new(Touches::new(settings.last_used_precision)),
            key: Arc::new(rand::random()),
            gate,
            keys: Batched::new(pool.clone(), settings.lookup_batch, |pool, ids| {
                Box::pin(async move { repo::by_client_ids(&pool, &ids).await })
            }),
            tokens: Batched::new(pool.clone(), settings.lookup_batch, |pool, hashes| {
                Box::pin(async move { repo::tokens(&pool, &hashes).await })
            }),
            pool,
            settings,
            listening: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }

    /// Resolves once this process listens for other processes' credential changes: from then on a change made
    /// elsewhere evicts the entry here (a readiness signal for tests and probes, never needed to serve).
    pub async fn listening(&self) {
        let mut state = self.listening.subscribe();
        let _ = state.wait_for(|listening| *listening).await;
    }

    fn cache_key(&self, token: &str) -> CacheKey {
        #[allow(clippy::expect_used)]
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&*self.key).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// bcrypt-hash a new secret under the gate (`Overloaded` when it is full).
    pub async fn hash_secret(&self, secret: String) -> anyhow::Result<String> {
        let cost = self.settings.bcrypt_cost;
        Ok(self
            .gate
            .admit()
            .await?
            .run(move || bcrypt::hash(secret, cost))
            .await??)
    }

    /// The hash of `hashes` that `secret` matches, verified on the gate's thread when the ticket gets its turn.
    async fn verify_any(
        ticket: Ticket,
        secret: &str,
        hashes: Vec<String>,
    ) -> anyhow::Result<Option<String>> {
        let secret = secret.to_owned();
        let matched = ticket
            .run(move || {
                hashes
                    .into_iter()
                    .find(|h| bcrypt::verify(&secret, h).unwrap_or(false))
            })
            .await?;
        Ok(matched)
    }

    /// Check a client id and secret (API key parts or OAuth client credentials). `None`: invalid, whatever the reason.
    /// `Err(Overloaded)` (in the chain) when the bcrypt gate has no room: the caller sheds the request.
    pub async fn check_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> anyhow::Result<Option<repo::SecretRow>> {
        let arrived = tokio::time::Instant::now();
        let checked = self.check_secret_matching(client_id, secret).await?;
        self.failure_floor(arrived, checked.is_none()).await;
        Ok(checked.map(|(row, _)| row))
    }

    /// Hold a failed check's answer until `failure_delay` after it `arrived` (the module's failure floor).
    async fn failure_floor(&self, arrived: tokio::time::Instant, failed: bool) {
        if failed {
            tokio::time::sleep_until(arrived + self.settings.failure_delay).await;
        }
    }

    /// [`Self::check_secret`], with the hash the secret matched.
    async fn check_secret_matching(
        &self,
        client_id: &str,
        secret: &str,
    ) -> anyhow::Result<Option<(repo::SecretRow, String)>> {
        // The connection goes back to the pool when the lookup returns: none is held while hashing.
        let Some(row) = self.keys.get(client_id.to_owned()).await? else {
            // No bcrypt for an unknown prefix: the failure floor keeps its answer time the same as a wrong secret's.
            return Ok(None);
        };
        let ticket = self.gate.admit().await?;
        let now = Utc::now();
        let hashes = accepted_hashes(&row, now).into_iter().cloned().collect();
        let matched = Self::verify_any(ticket, secret, hashes).await?;
        Ok(matched
            .map(|hash| (row, hash))
            .filter(|(row, _)| usable(row, now)))
    }

    /// Validate what the gateway forwarded. `Ok(None)` is "invalid", `Err` is our infrastructure failing.
    pub async fn validate(&self, presented: &str) -> anyhow::Result<Option<Grant>> {
        let arrived = tokio::time::Instant::now();
        let grant = self.validate_now(presented).await?;
        self.failure_floor(arrived, grant.is_none()).await;
        Ok(grant)
    }

    /// [`Self::validate`] without the failure floor.
    async fn validate_now(&self, presented: &str) -> anyhow::Result<Option<Grant>> {
        let parsed = parse_presented(presented);
        if parsed == Presented::Malformed {
            return Ok(None);
        }
        let key = self.cache_key(presented.trim());
        let now = Utc::now();
        if let Some(Hit { verified, refresh }) = self.cache.get(&key, now).await {
            self.touches.record(verified.grant.credential_id, now);
            let grant = verified.grant.clone();
            if refresh {
                self.refresh_ahead(key, presented.trim().to_owned(), verified);
            }
            return Ok(Some(grant));
        }
        // Requests presenting the same key together share one check (one bcrypt).
        let check = self.check_uncached(parsed, now);
        let verified = self.cache.load(key, check).await?;
        let grant = verified.map(|v| v.grant);
        if let Some(grant) = &grant {
            self.touches.record(grant.credential_id, now);
        }
        Ok(grant)
    }

    /// Re-check a cached key in the background (the caller owns its refresh, see [`ValidationCache::get`]).
    fn refresh_ahead(&self, key: CacheKey, presented: String, cached: Verified) {
        let this = self.clone();
        tokio::spawn(async move {
            let _done = RefreshDone(Arc::clone(&this.cache), key);
            let epoch = this.cache.epoch();
            match this.recheck(parse_presented(&presented), cached).await {
                Ok(Some(verified)) => this.cache.insert(key, verified, epoch).await,
                Ok(None) => this.cache.remove(&key).await,
                // Database unreachable: the entry serves until its TTL; the next hit tries again.
                Err(e) => tracing::debug!(error = %e, "cached credential not refreshed this time"),
            }
        });
    }

    /// The database's verdict on a cached validation, without bcrypt: an API key stays valid while its row still
    /// accepts the hash its secret matched (`None` otherwise: the next request checks it in full).
    async fn recheck(
        &self,
        parsed: Presented<'_>,
        cached: Verified,
    ) -> anyhow::Result<Option<Verified>> {
        let (Presented::ApiKey { prefix, .. }, Some(hash)) = (&parsed, cached.hash) else {
            return self.check_uncached(parsed, Utc::now()).await;
        };
        let row = self.keys.get((*prefix).to_owned()).await?;
        let now = Utc::now();
        Ok(row
            .filter(|row| usable(row, now) && accepted_hashes(row, now).contains(&&hash))
            .map(|row| Verified {
                grant: row.into(),
                hash: Some(hash),
            }))
    }

    /// The database (and bcrypt, for API keys) verdict on a presented credential.
    async fn check_uncached(
        &self,
        parsed: Presented<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Verified>> {
        Ok(match parsed {
            Presented::ApiKey { prefix, secret } => self
                .check_secret_matching(prefix, secret)
                .await?
                .map(|(row, hash)| Verified {
                    grant: row.into(),
                    hash: Some(hash),
                }),
            Presented::AccessToken(token) => self.tokens.get(sha256(token)).await?.and_then(|t| {
                let valid_until = t
                    .client_expires_at
                    .map_or(t.expires_at, |c| c.min(t.expires_at));
                (t.is_active && valid_until > now).then_some(Verified {
                    grant: Grant {
                        credential_id: t.credential_id,
                        store_id: t.store_id,
                        scopes: t.scopes,
                        valid_until: Some(valid_until),
                    },
                    hash: None,
                })
            }),
            Presented::Malformed => None,
        })
    }

    /// Issue an access token for a verified client.
    pub async fn issue_token(
        &self,
        credential_id: CredentialId,
        scopes: &[String],
        lifetime: Duration,
    ) -> anyhow::Result<(String, DateTime<Utc>)> {
        let token = format!(
            "{}{}",
            workflows::credentials::ACCESS_TOKEN_PREFIX,
            random_base62(43)
        );
        let expires_at = Utc::now() + chrono::Duration::from_std(lifetime)?;
        repo::insert_token(
            &self.pool,
            &sha256(&token),
            credential_id,
            scopes,
            expires_at,
        )
        .await?;
        Ok((token, expires_at))
    }

    /// Evict a credential here and tell other processes to do the same.
    pub async fn changed(&self, credential_id: CredentialId) -> anyhow::Result<()> {
        self.cache.evict(credential_id);
        repo::notify_changed(&self.pool, credential_id).await?;
        Ok(())
    }

    /// Cache hit/miss counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// Base62 from the OS CSPRNG.
pub fn random_base62(len: usize) -> String {
    loop {
        let bytes: [u8; 128] = rand::random();
        let s = workflows::credentials::base62(bytes, len);
        if s.len() == len {
            return s;
        }
    }
}
