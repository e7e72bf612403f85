//! The validator's background work: evicting cache entries on other processes' credential changes (Postgres
//! LISTEN), and flushing the coalesced `last_used_at` times.

use std::time::Duration;

use jobs::backoff::Backoff;
use tokio_util::sync::CancellationToken;
use workflows::ids::CredentialId;

use super::Validator;
use crate::db::credentials as repo;

impl Validator {
    /// Background work: evict on other processes' changes; flush `last_used_at`. Runs until `shutdown`.
    pub async fn run(self, flush_every: Duration, shutdown: CancellationToken) {
        let listener = tokio::spawn(self.clone().listen(shutdown.clone()));
        let mut tick = tokio::time::interval(flush_every);
        loop {
            let stop = tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown.cancelled() => true,
            };
            let (ids, at) = self.touches.take();
            if !ids.is_empty()
                && let Err(e) = repo::touch(&self.pool, &ids, &at).await
            {
                tracing::warn!(error = %e, "cannot write last_used_at; keeping it for the next flush");
                self.touches.put_back(ids, at);
            }
            if stop {
                break;
            }
        }
        let _ = listener.await;
    }

    async fn listen(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let Ok(mut listener) = sqlx::postgres::PgListener::connect_with(&self.pool).await
            else {
                let _ = backoff.wait(&shutdown).await;
                continue;
            };
            if listener.listen("ss3_credentials_changed").await.is_err() {
                let _ = backoff.wait(&shutdown).await;
                continue;
            }
            // Notifications sent while we were not listening are lost: start from an empty cache.
            self.cache.clear();
            backoff.reset();
            self.listening.send_replace(true);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.recv() => match n {
                        Ok(n) => match n.payload().parse::<CredentialId>() {
                            Ok(id) => self.cache.evict(id),
                            Err(_) => self.cache.clear(),
                        },
                        Err(_) => break,
                    },
                }
            }
            self.listening.send_replace(false);
        }
    }
}
