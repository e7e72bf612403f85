//! Waking workers for new jobs: one NOTIFY after a commit, not one inside it.
//!
//! Postgres serialises the commits of every transaction that sent a NOTIFY, each holding a database-wide lock
//! through its WAL flush, so concurrent ingest transactions that notify cannot share a flush (group commit). apalis'
//! trigger notifies for every job row it inserts. Our migrations replace it with one that notifies once per
//! statement, and not at all in a transaction begun by [`begin_quiet`]: ingest begins its transactions so and calls
//! [`Announcer::announce`] after they commit. Announcements made while one is being sent are folded into the next,
//! so a busy ingest sends about one NOTIFY per round trip to Postgres, outside any transaction that writes.

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;

use crate::job::QUEUE;

/// The channel apalis' trigger uses, and our workers listen on.
pub const CHANNEL: &str = "apalis::job::insert";

/// Sends "new jobs are due" to every worker listening, after the caller's commit. Cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    pending: mpsc::Sender<()>,
}

impl Announcer {
    /// An announcer sending on `pool`, from a task that ends when the last clone is dropped.
    pub fn new(pool: PgPool) -> Self {
        let (pending, mut announcements) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let payload = serde_json::json!({ "job_type": QUEUE }).to_string();
            while announcements.recv().await.is_some() {
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&payload)
                    .execute(&pool)
                    .await;
                // A lost wake-up costs latency, not work: workers look again within their idle backstop.
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "cannot announce new jobs; workers will find them by polling");
                }
            }
        });
        Self { pending }
    }

    /// Announce jobs committed due now. Never waits: one announcement pending is as good as many.
    pub fn announce(&self) {
        let _ = self.pending.try_send(());
    }
}

/// Begin a transaction whose job inserts send no NOTIFY of their own (the caller announces after its commit). The
/// mark rides in the same round trip as the `BEGIN`, and is a `SET LOCAL` (a utility statement, which Postgres neither
/// plans nor executes as a query), so the hot path pays nothing for it.
pub async fn begin_quiet(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN; SET LOCAL ss3.announce = 'after_commit'")
        .await
}
