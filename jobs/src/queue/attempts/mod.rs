//! The one effect writer of outbound jobs (webhook deliveries, connector syncs): attempts recorded, rows moved on,
//! next attempts queued, cancels and deferrals, dead letters with their published event — all with set-based
//! statements (`unnest` arrays) in the caller's transaction, a handful of statements per kind and flush whatever
//! its size. Also the shared re-trigger and cancel-by-owner statements.
//!
//! Every statement is conditional on the row's `dispatch_seq` and on its status still waiting for an attempt, so a
//! row that moved on meanwhile (re-triggered, cancelled, written by a rescued twin) is left alone.
//!
//! A kind's table is described by [`AttemptTable`], which the kind implements beside its [`OutboundKind`] in its own
//! module (`crate::webhook::table`, `crate::connector::handler::sync::table`): the table and its columns, how its
//! rows are loaded, its attempt log, and the event it publishes. The statements are built from those constants,
//! never from input.

pub mod lanes;
mod retrigger;

use crate::Job;
use crate::attempt::{AttemptRecord, Effect, KindEffect, OutboundKind};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::attempt::{AttemptStatus, deferred_note};

pub use self::retrigger::{Retriggered, cancel_waiting, retrigger};
use super::effects::Writes;

/// The record of an attempt of kind `T`.
pub type Record<T> = AttemptRecord<<T as OutboundKind>::Loaded, <T as OutboundKind>::Extras>;

/// The row update of recorded attempts, to which a kind binds its extra columns.
pub type RowUpdate<'q> = sqlx::query::QueryScalar<'q, sqlx::Postgres, Uuid, PgArguments>;

/// How a kind of outbound job is stored. Its table has the shared columns (`status`, `attempt_number`,
/// `next_retry_at`, `dispatch_seq`, `last_error`, `store_id`, `updated_at`) and the ones named here.
#[async_trait]
pub trait AttemptTable: OutboundKind {
    /// The table of rows (`webhook_deliveries`).
    const TABLE: &'static str;
    /// Its id column (`delivery_id`).
    const ID: &'static str;
    /// The column naming its owner (`subscription_id`), also the owner table's id column.
    const OWNER: &'static str;
    /// The owner table (`webhook_subscriptions`), with `is_active` and `deleted_at`.
    const OWNER_TABLE: &'static str;
    /// Set when the row succeeds (`delivered_at`).
    const DONE_AT: &'static str;
    /// Extra `SET` assignments of a recorded attempt, reading `i.<column>` (`", http_status = i.http_status"`).
    const EXTRA_SET: &'static str;
    /// Their `unnest` arguments, numbered from `$9` (`", $9::int[]"`).
    const EXTRA_UNNEST: &'static str;
    /// Their names in the `unnest` alias (`", http_status"`).
    const EXTRA_NAMES: &'static str;

    /// The status as this table spells it.
    fn status_name(status: AttemptStatus) -> &'static str;
    /// Load the rows a batch of jobs refers to (with their owners), in one query; unknown ids are left out.
    async fn load(
        pool: &PgPool,
        ids: &[Self::Id],
    ) -> anyhow::Result<HashMap<Self::Id, Self::Loaded>>;
    /// Bind the extra columns of `records`, in the order of [`AttemptTable::EXTRA_UNNEST`].
    fn bind_extras<'q>(update: RowUpdate<'q>, records: &[&Record<Self>]) -> RowUpdate<'q>;
    /// Append `records` to the kind's attempt log (every attempt, even one whose row moved on while it ran), and
    /// count their lanes' health ([`lanes::health`], their owners and `slow`) in the same statement.
    async fn log(conn: &mut PgConnection, records: &[&Record<Self>]) -> sqlx::Result<()>;
    /// The event published once `record` was applied (`None`: nothing to publish), with its message key.
    fn published(record: &Record<Self>) -> Option<(String, Value)>;

    /// Whether a row's finishing may let another row go on ([`AttemptTable::finished`]); rows that never do cost no
    /// statement.
    fn sequenced(_loaded: &Self::Loaded) -> bool {
        false
    }

    /// Rows that finished in this flush (succeeded, dead-lettered, cancelled): the jobs of the rows that may go on
    /// now (webhooks: the next delivery of an ordered line). None by default.
    async fn finished(_conn: &mut PgConnection, _ids: &[Uuid]) -> sqlx::Result<Vec<Job>> {
        Ok(Vec::new())
    }

    /// The jobs of rows just restarted by a re-trigger (their new jobs, due now): all of them by default; a kind
    /// whose rows wait their turn keeps back those that must wait.
    async fn restarted(
        _conn: &mut PgConnection,
        jobs: Vec<(Job, Duration)>,
    ) -> sqlx::Result<Vec<(Job, Duration)>> {
        Ok(jobs)
    }
}

/// Apply the effects of a batch of jobs of kind `T`, adding their next jobs and events to `writes`.
pub async fn apply<T: AttemptTable>(
    conn: &mut PgConnection,
    effects: &[&KindEffect<T>],
    writes: &mut Writes,
) -> anyhow::Result<()> {
    let records: Vec<&Record<T>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Record(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    let mut finished = Vec::new();
    if !records.is_empty() {
        // The rows first: the log's foreign key then finds each row locked by this transaction's update already,
        // instead of locking it (`FOR KEY SHARE`, a WAL record and a dirtied page per row) just before the update.
        finished = record::<T>(conn, &records, writes).await?;
        T::log(conn, &records).await?;
    }
    finished.extend(cancel::<T>(conn, effects).await?);
    if !finished.is_empty() {
        for job in T::finished(conn, &finished).await? {
            writes.queue(job, Duration::ZERO);
        }
    }
    defer::<T>(conn, effects, writes).await?;
    Ok(())
}

/// The shared columns of recorded attempts, one entry per record.
#[derive(Default)]
struct RowColumns {
    id: Vec<Uuid>,
    dispatch_seq: Vec<i32>,
    status: Vec<&'static str>,
    attempt_number: Vec<i32>,
    next_retry_at: Vec<Option<DateTime<Utc>>>,
    done_at: Vec<Option<DateTime<Utc>>>,
    error: Vec<Option<String>>,
    bump: Vec<i32>,
}

impl RowColumns {
    fn of<T: AttemptTable>(records: &[&Record<T>]) -> Self {
        let mut c = Self::default();
        for r in records {
            c.id.push(T::id(&r.loaded).into());
            c.dispatch_seq.push(r.state.dispatch_seq);
            c.status.push(T::status_name(r.decision.status));
            c.attempt_number.push(r.attempt_number as i32);
            c.next_retry_at.push(r.decision.next_retry_at);
            c.done_at.push(r.decision.delivered_at);
            c.error.push(r.last_error.clone());
            c.bump.push(i32::from(r.decision.queues_next_attempt()));
        }
        c
    }
}

/// Move recorded rows on; for those applied, queue their next attempt and publish their event. Returns the
/// sequenced rows that finished ([`AttemptTable::sequenced`]).
async fn record<T: AttemptTable>(
    conn: &mut PgConnection,
    records: &[&Record<T>],
    writes: &mut Writes,
) -> anyhow::Result<Vec<Uuid>> {
    let (table, id, done_at) = (T::TABLE, T::ID, T::DONE_AT);
    let (extra_set, extra_unnest, extra_names) = (T::EXTRA_SET, T::EXTRA_UNNEST, T::EXTRA_NAMES);
    let rows = rows_of(
        &format!(
            "$1::uuid[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[], \
             $8::int[]{extra_unnest}"
        ),
        records.len(),
    );
    let sql = format!(
        "UPDATE {table} t SET status = i.status, attempt_number = i.attempt_number, next_retry_at = i.next_retry_at,
           {done_at} = COALESCE(i.done_at, t.{done_at}), last_error = i.error,
           dispatch_seq = t.dispatch_seq + i.bump, updated_at = now(){extra_set}
         FROM {rows} AS i(id, dispatch_seq, status, attempt_number, next_retry_at, done_at, error, bump{extra_names})
         WHERE t.{id} = i.id AND t.dispatch_seq = i.dispatch_seq AND t.status IN ('PENDING', 'FAILED')
         RETURNING t.{id}"
    );
    let c = RowColumns::of::<T>(records);
    let update = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(&c.id)
        .bind(&c.dispatch_seq)
        .bind(&c.status)
        .bind(&c.attempt_number)
        .bind(&c.next_retry_at)
        .bind(&c.done_at)
        .bind(&c.error)
        .bind(&c.bump);
    let applied: Vec<Uuid> = T::bind_extras(update, records)
        .fetch_all(&mut *conn)
        .await?;
    let mut finished = Vec::new();
    for r in records {
        let row_id = T::id(&r.loaded);
        if !applied.contains(&row_id.into()) {
            continue;
        }
        if !r.decision.status.awaits_attempt() && T::sequenced(&r.loaded) {
            finished.push(row_id.into());
        }
        if let Some(run_in) = r.next_run_in.filter(|_| r.decision.queues_next_attempt()) {
            let job = T::job(row_id, T::owner(&r.loaded), r.state.dispatch_seq + 1);
            writes.queue(job, run_in);
        }
        if let Some((key, event)) = T::published(r) {
            writes.publish_event(key, event);
        }
    }
    Ok(finished)
}

/// The rows a set-based statement reads from `arrays` (its typed array parameters, `"$1::uuid[], $2::int[]"`, one
/// element per row): `unnest` of them, or, for one row, a subquery of their first elements. Postgres estimates an
/// `unnest` of parameters at ten rows in a generic plan and at the array's length in a custom one, so for one row it
/// finds a custom plan cheaper every time and plans the statement on every call (the flush's row update: 0.19 ms of
/// planning per call, more than half its execution; docs/benchmarks.md, "Nothing loaded back"); the one-row form is
/// estimated alike both ways, and its generic plan is kept.
fn rows_of(arrays: &str, rows: usize) -> String {
    if rows != 1 {
        return format!("unnest({arrays})");
    }
    let firsts: Vec<String> = arrays
        .split(',')
        .map(|array| format!("({})[1]", array.trim()))
        .collect();
    format!("(SELECT {})", firsts.join(", "))
}

/// Stop the retries of cancelled rows; returns those cancelled.
async fn cancel<T: AttemptTable>(
    conn: &mut PgConnection,
    effects: &[&KindEffect<T>],
) -> anyhow::Result<Vec<Uuid>> {
    let (mut ids, mut seqs, mut reasons) = (Vec::<Uuid>::new(), Vec::new(), Vec::new());
    for e in effects {
        if let Effect::Cancel {
            id,
            dispatch_seq,
            reason,
        } = e
        {
            ids.push((*id).into());
            seqs.push(*dispatch_seq);
            reasons.push(reason.as_str());
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (table, id) = (T::TABLE, T::ID);
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} t SET status = 'CANCELLED', next_retry_at = NULL, last_error = i.reason, updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::text[]) AS i(id, dispatch_seq, reason)
         WHERE t.{id} = i.id AND t.dispatch_seq = i.dispatch_seq AND t.status IN ('PENDING', 'FAILED')
         RETURNING t.{id}"
    )))
    .bind(&ids)
    .bind(&seqs)
    .bind(&reasons)
    .fetch_all(&mut *conn)
    .await?)
}

/// Queue deferred attempts again without counting them: the row's `dispatch_seq` moves on, its counter does not.
async fn defer<T: AttemptTable>(
    conn: &mut PgConnection,
    effects: &[&KindEffect<T>],
    writes: &mut Writes,
) -> anyhow::Result<()> {
    let deferred: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Defer {
                id,
                owner,
                dispatch_seq,
                run_in,
                reason,
            } => Some((
                *id,
                *dispatch_seq,
                *run_in,
                deferred_note(reason.as_deref()),
                *owner,
            )),
            _ => None,
        })
        .collect();
    if deferred.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deferred.iter().map(|d| d.0.into()).collect();
    let seqs: Vec<i32> = deferred.iter().map(|d| d.1).collect();
    let notes: Vec<Option<&str>> = deferred.iter().map(|d| d.3.as_deref()).collect();
    let (table, id) = (T::TABLE, T::ID);
    let moved: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} t SET dispatch_seq = t.dispatch_seq + 1, last_error = COALESCE(i.note, t.last_error),
                updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::text[]) AS i(id, dispatch_seq, note)
         WHERE t.{id} = i.id AND t.dispatch_seq = i.dispatch_seq AND t.status IN ('PENDING', 'FAILED')
         RETURNING t.{id}"
    )))
    .bind(&ids)
    .bind(&seqs)
    .bind(&notes)
    .fetch_all(&mut *conn)
    .await?;
    for (row_id, dispatch_seq, run_in, _, owner) in deferred {
        if moved.contains(&row_id.into()) {
            writes.queue(T::job(row_id, owner, dispatch_seq + 1), run_in);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rows_of;

    #[test]
    fn one_row_is_read_from_the_first_elements_and_several_are_unnested() {
        assert_eq!(
            rows_of("$1::uuid[], $2::int[]", 1),
            "(SELECT ($1::uuid[])[1], ($2::int[])[1])"
        );
        assert_eq!(
            rows_of("$1::uuid[], $2::int[]", 3),
            "unnest($1::uuid[], $2::int[])"
        );
    }
}
