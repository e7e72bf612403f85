//! Access tokens (LWA, eBay OAuth, Google service account) cached until shortly before they expire, fetched once
//! per key even when many jobs of one config start together: a bounded `moka` cache whose entries live as long as
//! the token endpoint said (minus a margin), with single-flight loading.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;

use crate::channel::{ChannelRequest, is_unauthorized};
use crate::model::{ConnectorContext, ConnectorError};

/// Tokens are renewed this long before the channel says they expire.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Most tokens kept per adapter (one per config and credentials); the least used go first.
const CAPACITY: u64 = 10_000;

/// A bearer token and how long it may still be used.
#[derive(Clone)]
struct Token {
    value: String,
    ttl: Duration,
}

/// Each entry expires after its own token's lifetime.
struct ByLifetime;

impl Expiry<String, Token> for ByLifetime {
    fn expire_after_create(&self, _: &String, token: &Token, _: Instant) -> Option<Duration> {
        Some(token.ttl)
    }
}

/// A cache of bearer tokens by key (config id and credentials fingerprint).
pub struct TokenCache {
    tokens: Cache<String, Token>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(ByLifetime)
                .build(),
        }
    }
}

impl TokenCache {
    /// The cached token, or the one `fetch` returns with its lifetime (callers for the same key wait for it).
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<String, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), ConnectorError>>,
    {
        let load = async {
            let (value, lifetime) = fetch().await?;
            Ok(Token {
                value,
                ttl: lifetime.saturating_sub(EXPIRY_MARGIN),
            })
        };
        self.tokens
            .try_get_with(key.to_owned(), load)
            .await
            .map(|token| token.value)
            .map_err(|e: Arc<ConnectorError>| (*e).clone())
    }

    /// Drop a token the channel refused, so the next call fetches a new one.
    pub async fn forget(&self, key: &str) {
        self.tokens.invalidate(key).await;
    }
}

/// Read an OAuth token answer (`access_token`, `expires_in`).
pub fn token_answer(answer: &Value) -> Result<(String, Duration), ConnectorError> {
    let token = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectorError::Credentials("token endpoint answered without access_token".into())
        })?;
    let lifetime = answer["expires_in"].as_u64().unwrap_or(3600);
    Ok((token.to_owned(), Duration::from_secs(lifetime)))
}

/// The config's cached access token, or one fetched with the request `build` makes: built only on a cache miss,
/// so a signed assertion (Google) is not re-signed for every call. At the token endpoint, a refused grant or client
/// (400/401/403) is a credentials problem, not a retry.
pub async fn cached_token(
    ctx: &ConnectorContext<'_>,
    tokens: &TokenCache,
    build: impl FnOnce() -> Result<ChannelRequest, ConnectorError>,
) -> Result<String, ConnectorError> {
    tokens
        .get_or_fetch(&token_key(ctx), || async {
            match ctx.channel.call(&build()?).await {
                Ok(answer) => token_answer(&answer),
                Err(ConnectorError::Channel(f)) if matches!(f.status, Some(400 | 401 | 403)) => {
                    Err(ConnectorError::Credentials(format!(
                        "the channel refused the credentials: {}",
                        f.reason
                    )))
                }
                Err(e) => Err(e),
            }
        })
        .await
}

/// The cache key of a config's access token.
pub fn token_key(ctx: &ConnectorContext<'_>) -> String {
    format!("{}:{}", ctx.config.config_id, ctx.credentials.fingerprint())
}

/// Call with a bearer token; a 401 drops the cached token so the retry fetches a new one.
pub async fn call_with_token(
    ctx: &ConnectorContext<'_>,
    tokens: &TokenCache,
    request: &ChannelRequest,
) -> Result<Value, ConnectorError> {
    let result = ctx.channel.call(request).await;
    if let Err(e) = &result
        && is_unauthorized(e)
    {
        tokens.forget(&token_key(ctx)).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn fetches_once_until_forgotten() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("k", || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(("t".to_owned(), Duration::from_secs(3600)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok().and_then(Result::ok).as_deref(), Some("t"));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        cache.forget("k").await;
        let again = cache
            .get_or_fetch("k", || async {
                Ok(("u".to_owned(), Duration::from_secs(3600)))
            })
            .await;
        assert_eq!(again.ok().as_deref(), Some("u"));
    }

    #[tokio::test]
    async fn a_token_inside_the_margin_is_renewed() {
        let cache = TokenCache::default();
        let short = || async { Ok(("old".to_owned(), EXPIRY_MARGIN)) };
        assert_eq!(
            cache.get_or_fetch("k", short).await.ok().as_deref(),
            Some("old")
        );
        let fresh = || async { Ok(("new".to_owned(), Duration::from_secs(3600))) };
        assert_eq!(
            cache.get_or_fetch("k", fresh).await.ok().as_deref(),
            Some("new")
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let cache = TokenCache::default();
        let refused = || async { Err(ConnectorError::Credentials("refused".into())) };
        assert!(cache.get_or_fetch("k", refused).await.is_err());
        let ok = || async { Ok(("t".to_owned(), Duration::from_secs(3600))) };
        assert_eq!(cache.get_or_fetch("k", ok).await.ok().as_deref(), Some("t"));
    }
}
