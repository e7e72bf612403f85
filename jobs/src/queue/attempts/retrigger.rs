//! The one re-trigger path of outbound rows (finished → PENDING with a fresh attempt counter and one job due now),
//! and the cancellation of an owner's waiting rows when it is deactivated or deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::attempt::Retrigger;

use super::AttemptTable;
use crate::queue;

/// Which rows of a store a re-trigger restarts; every filter that is set must hold. Rows of an inactive or
/// deleted owner are never restarted.
#[derive(Debug, Clone, Copy)]
pub struct Retriggered<'a> {
    /// The store the rows belong to.
    pub store_id: &'a str,
    /// The statuses a row may be restarted from.
    pub which: Retrigger,
    /// Only rows of this owner (subscription, connector).
    pub owner: Option<Uuid>,
    /// Only this row.
    pub id: Option<Uuid>,
    /// Only rows dead-lettered at or after this time.
    pub dead_since: Option<DateTime<Utc>>,
}

/// Restart the selected rows of kind `T`: status PENDING, attempt counter 0, no due time, and a fresh job due now
/// (its `dispatch_seq` supersedes any queued one). History stays in the kind's attempt log.
/// Returns the restarted ids and their new `dispatch_seq`.
pub async fn retrigger<T: AttemptTable>(
    pool: &PgPool,
    scope: &Retriggered<'_>,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let (table, id, owner, owner_table) = (T::TABLE, T::ID, T::OWNER, T::OWNER_TABLE);
    let statuses: Vec<&str> = scope
        .which
        .from_statuses()
        .iter()
        .map(|s| T::status_name(*s))
        .collect();
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, i32, Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} t SET status = 'PENDING', attempt_number = 0, next_retry_at = NULL,
                dispatch_seq = t.dispatch_seq + 1, updated_at = now()
         FROM {owner_table} o
         WHERE o.{owner} = t.{owner} AND o.is_active AND o.deleted_at IS NULL
           AND t.store_id = $1 AND t.status = ANY($2)
           AND ($3::uuid IS NULL OR t.{owner} = $3)
           AND ($4::uuid IS NULL OR t.{id} = $4)
           AND ($5::timestamptz IS NULL OR (t.status = 'DEAD_LETTERED' AND t.updated_at >= $5))
         RETURNING t.{id}, t.dispatch_seq, t.{owner}"
    )))
    .bind(scope.store_id)
    .bind(&statuses)
    .bind(scope.owner)
    .bind(scope.id)
    .bind(scope.dead_since)
    .fetch_all(&mut *tx)
    .await?;
    let jobs = rows
        .iter()
        .map(|&(row_id, dispatch_seq, owner)| {
            (T::job(row_id.into(), owner, dispatch_seq), Duration::ZERO)
        })
        .collect();
    let jobs = T::restarted(&mut tx, jobs).await?;
    queue::push(&mut tx, jobs).await.map_err(queue::as_sqlx)?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id, seq, _)| (id, seq)).collect())
}

/// Cancel the waiting rows of kind `T` of an owner that was deactivated or deleted, recording `reason`.
pub async fn cancel_waiting<T: AttemptTable>(
    conn: &mut PgConnection,
    owner_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let (table, owner) = (T::TABLE, T::OWNER);
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET status = 'CANCELLED', next_retry_at = NULL, last_error = $2, updated_at = now()
         WHERE {owner} = $1 AND status IN ('PENDING', 'FAILED')"
    )))
    .bind(owner_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
