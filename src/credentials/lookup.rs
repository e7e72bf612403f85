//! Lookups of presented credentials, batched: a lookup waits up to `window` for others, then one `= ANY($1)`
//! statement answers all of them. A flood of random keys (each one a miss) then costs Postgres one statement per
//! window instead of one per request, and the API one connection checkout per window. An uncached valid key pays
//! the window once per cache TTL (an API key then goes on to bcrypt, which costs far more); cached keys never get
//! here. The database stays the only authority: nothing is remembered between batches.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::oneshot;

/// Most keys in one statement; a batch that fills is sent at once.
const MAX_BATCH: usize = 512;

type Found<K, V> = Result<Vec<(K, V)>, sqlx::Error>;
type Load<K, V> = fn(PgPool, Vec<K>) -> Pin<Box<dyn Future<Output = Found<K, V>> + Send>>;
type Answer<V> = Result<Option<V>, Failed>;
/// The lookups waiting for the next statement, each with where its answer goes.
type Waiting<K, V> = Vec<(K, oneshot::Sender<Answer<V>>)>;

/// One batch's failure, handed to each of its callers with the `sqlx::Error` itself as its source, so the API
/// still tells an exhausted pool (503 overloaded) or an unreachable database (503) from a fault.
#[derive(Debug, Clone)]
pub struct Failed(Arc<sqlx::Error>);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("credential lookup failed")
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Batched lookups of `V` by `K`. Cheap to clone.
pub struct Batched<K, V> {
    pool: PgPool,
    window: Duration,
    load: Load<K, V>,
    pending: Arc<Mutex<Waiting<K, V>>>,
}

impl<K, V> Clone for Batched<K, V> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            window: self.window,
            load: self.load,
            pending: self.pending.clone(),
        }
    }
}

impl<K, V> Batched<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Lookups through `load`, gathered for `window` (zero: each on its own).
    pub fn new(pool: PgPool, window: Duration, load: Load<K, V>) -> Self {
        Self {
            pool,
            window,
            load,
            pending: Arc::default(),
        }
    }

    /// The row of `key`, if there is one.
    pub async fn get(&self, key: K) -> Result<Option<V>, Failed> {
        if self.window.is_zero() {
            let found = (self.load)(self.pool.clone(), vec![key]).await;
            return found
                .map(|rows| rows.into_iter().next().map(|(_, v)| v))
                .map_err(|e| Failed(Arc::new(e)));
        }
        let (tx, rx) = oneshot::channel();
        let (first, full) = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.push((key, tx));
            (pending.len() == 1, pending.len() >= MAX_BATCH)
        };
        if first || full {
            let this = self.clone();
            tokio::spawn(async move {
                if !full {
                    tokio::time::sleep(this.window).await;
                }
                this.flush().await;
            });
        }
        // The sender is dropped only if the flush task panicked: a fault, not a miss.
        rx.await
            .unwrap_or_else(|_| Err(Failed(Arc::new(sqlx::Error::PoolClosed))))
    }

    /// Answer every lookup waiting now with one statement.
    async fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return; // a full batch's flush took it first
        }
        let keys: HashSet<K> = batch.iter().map(|(k, _)| k.clone()).collect();
        let keys = keys.into_iter().collect();
        match (self.load)(self.pool.clone(), keys).await {
            Ok(rows) => {
                let found: HashMap<K, V> = rows.into_iter().collect();
                for (key, tx) in batch {
                    let _ = tx.send(Ok(found.get(&key).cloned()));
                }
            }
            Err(e) => {
                let failed = Failed(Arc::new(e));
                for (_, tx) in batch {
                    let _ = tx.send(Err(failed.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
    const FAILS: u32 = 1001;

    /// A stand-in for the statement: counts calls, finds even numbers, fails on [`FAILS`].
    fn evens(_: PgPool, keys: Vec<u32>) -> Pin<Box<dyn Future<Output = Found<u32, u32>> + Send>> {
        STATEMENTS.fetch_add(1, Ordering::SeqCst);
        evens_uncounted(keys)
    }

    fn evens_uncounted(keys: Vec<u32>) -> Pin<Box<dyn Future<Output = Found<u32, u32>> + Send>> {
        Box::pin(async move {
            if keys.contains(&FAILS) {
                return Err(sqlx::Error::PoolTimedOut);
            }
            Ok(keys
                .into_iter()
                .filter(|k| k % 2 == 0)
                .map(|k| (k, k * 10))
                .collect())
        })
    }

    fn pool() -> PgPool {
        // Never connects: the loader above does not use it.
        sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Catches: lookups of one window sent one statement each (the flood's cost this exists to remove), answers
    /// mixed up between callers, or a failure that loses its cause (the API answers an exhausted pool with 503).
    #[tokio::test]
    async fn lookups_of_one_window_share_one_statement_and_each_gets_its_own_answer() {
        let batched = Batched::new(pool(), Duration::from_millis(5), evens);
        let before = STATEMENTS.load(Ordering::SeqCst);
        let answers = futures::future::join_all((0..300u32).map(|k| batched.get(k % 150))).await;
        assert_eq!(STATEMENTS.load(Ordering::SeqCst) - before, 1);
        for (k, answer) in (0..300u32).zip(answers) {
            let k = k % 150;
            let want = (k % 2 == 0).then_some(k * 10);
            assert_eq!(answer.unwrap_or_else(|e| panic!("{e}")), want, "key {k}");
        }
        let failed = batched.get(FAILS).await.expect_err("the statement failed");
        let cause = anyhow::Error::new(failed);
        assert!(cause.chain().any(|c| matches!(
            c.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        )));
    }

    /// Catches: a batch grown without bound (one statement with every key of a long flood).
    #[tokio::test]
    async fn a_full_batch_is_sent_without_waiting_for_the_window() {
        let batched = Batched::new(pool(), Duration::from_secs(3600), |_, keys| {
            evens_uncounted(keys)
        });
        let answers = tokio::time::timeout(
            Duration::from_secs(1),
            futures::future::join_all((0..MAX_BATCH as u32).map(|k| batched.get(k * 2))),
        )
        .await
        .expect("answered before the window ended");
        assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
    }
}
