//! Access tokens (LWA, eBay OAuth, Google service account) cached until shortly before they expire, fetched once
//! per key even when many jobs of one config start together.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ConnectorError;

/// Tokens are renewed this long before the channel says they expire.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

type Slot = Arc<tokio::sync::Mutex<Option<(String, Instant)>>>;

/// A cache of bearer tokens by key (config id and credentials fingerprint).
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl TokenCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The cached token, or the one `fetch` returns with its lifetime (callers for the same key wait for it).
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<String, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), ConnectorError>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some((token, until)) = guard.as_ref()
            && *until > Instant::now()
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = fetch().await?;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        *guard = Some((token.clone(), until));
        Ok(token)
    }

    /// Drop a token the channel refused (401), so the next call fetches a new one.
    pub fn forget(&self, key: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(key);
    }
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
        cache.forget("k");
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
}
