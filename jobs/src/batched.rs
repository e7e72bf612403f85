//! Maintenance statements run in batches: one statement repeated until a batch comes back short, each batch its own
//! short transaction, so removing or moving a million rows never holds a long lock or transaction that delivery would
//! wait on (retention, the statistics roll-up, the promotion of parked jobs).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Run `statement` (which acts on up to `$2` rows dated before `$1`, and reports them as rows affected) until a batch
/// comes back short. Returns how many rows it acted on.
pub async fn drain(
    pool: &PgPool,
    statement: &str,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let done = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(before)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected();
        total += done;
        if done < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(total);
        }
        // Let delivery's statements through between batches.
        tokio::task::yield_now().await;
    }
}
