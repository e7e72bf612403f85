//! Vacuuming the tables the engine churns, when the server does not.
//!
//! Every delivery updates its job twice (claim, acknowledgement) before the sweep deletes it, and updates its
//! delivery row, lane and counters: each leaves a dead row version that only VACUUM makes reusable. With the server's
//! autovacuum off (as on some CI and hand-tuned machines), those versions pile up and every claim, load and flush
//! walks them: a 30-minute soak at 500 events/s fell from 500 to ~50 deliveries/s (docs/benchmarks.md, "Soak"). So
//! the worker's sweep vacuums a table once its dead rows pass a threshold, as autovacuum would, one process at a time.
//! With autovacuum on (the default), `auto` leaves it to the server and the per-table settings of our migrations.
//! The queue's planner statistics are refreshed by the same rule, applied to the rows changed since the last
//! `ANALYZE` ([`analyze_if_changed`]); every other table's by autovacuum's own rule for analyzing ([`analyze_grown`]),
//! which also covers the tables that only grow (no dead rows, so the vacuum rule never reaches them).

use serde::Deserialize;
use sqlx::PgPool;

/// Whether the sweep vacuums (`[worker] vacuum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VacuumMode {
    /// Only while the server's `autovacuum` setting is off.
    Auto,
    /// Whatever the server does.
    Always,
    /// Never (an operator vacuums, or autovacuum is trusted).
    Never,
}

/// When the sweep vacuums a table.
#[derive(Debug, Clone, Copy)]
pub struct Vacuum {
    /// Whether it vacuums at all.
    pub mode: VacuumMode,
    /// A table is vacuumed once it holds more dead rows than this plus [`SHARE_OF_LIVE`] of its live rows
    /// (autovacuum's rule, with a base that suits a queue table: its default is 50 + 20 %).
    pub dead_rows: i64,
}

/// The share of a table's live rows added to [`Vacuum::dead_rows`] in both of the sweep's rules: dead rows before a
/// vacuum, changed rows before an `ANALYZE` of the queue.
const SHARE_OF_LIVE: f64 = 0.05;

/// `VACUUM (ANALYZE)` each of the database's own tables (ours and apalis') past the threshold, most dead rows first,
/// unless another process is doing it. Returns the tables vacuumed.
pub async fn vacuum_churned(pool: &PgPool, vacuum: Vacuum) -> Result<Vec<String>, sqlx::Error> {
    if vacuum.mode == VacuumMode::Never {
        return Ok(Vec::new());
    }
    // VACUUM cannot run in a transaction, so the lock is the session's, on one connection, released at the end
    // (or when the connection dies).
    let mut conn = pool.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('integration-service:vacuum'))")
            .fetch_one(&mut *conn)
            .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let result = vacuum_locked(&mut conn, vacuum).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext('integration-service:vacuum'))")
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        conn.close_on_drop();
    }
    unlocked?;
    result
}

async fn vacuum_locked(
    conn: &mut sqlx::PgConnection,
    vacuum: Vacuum,
) -> Result<Vec<String>, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables
         WHERE ($1 OR NOT current_setting('autovacuum')::bool)
           AND n_dead_tup > $2 + $3 * n_live_tup
         ORDER BY n_dead_tup DESC",
    )
    .bind(vacuum.mode == VacuumMode::Always)
    .bind(vacuum.dead_rows)
    .bind(SHARE_OF_LIVE)
    .fetch_all(&mut *conn)
    .await?;
    on_each(conn, "VACUUM (ANALYZE)", &tables).await?;
    Ok(tables)
}

/// Refresh the planner's statistics of the queue (the claim's plan depends on how many jobs wait and how many are
/// done) once enough of it changed since its last `ANALYZE`, by whoever ran it (autovacuum, the sweep's vacuum):
/// more than `rows` plus [`SHARE_OF_LIVE`] of its live rows inserted, updated or deleted, the rule the sweep's vacuum
/// applies to dead rows. `ANALYZE` reads a sample of up to 30,000 pages: with a million retries waiting in the queue, analyzing
/// after every sweep that deleted jobs read the queue's heap ten times over during one 20-second burst
/// (docs/benchmarks.md, "Flat with growth"). Returns whether it analyzed.
pub async fn analyze_if_changed(pool: &PgPool, rows: i64) -> Result<bool, sqlx::Error> {
    let changed: bool = sqlx::query_scalar(
        "SELECT COALESCE((SELECT n_mod_since_analyze > $1 + $2 * n_live_tup FROM pg_stat_user_tables
                          WHERE relid = 'apalis.jobs'::regclass), FALSE)",
    )
    .bind(rows)
    .bind(SHARE_OF_LIVE)
    .fetch_one(pool)
    .await?;
    if changed {
        sqlx::query("ANALYZE apalis.jobs").execute(pool).await?;
    }
    Ok(changed)
}

/// Autovacuum's defaults for analyzing a table (`autovacuum_analyze_threshold`, `autovacuum_analyze_scale_factor`):
/// once more than this many rows plus this share of its live rows changed since its statistics were taken.
const ANALYZE_BASE: i64 = 50;
const ANALYZE_SHARE: f64 = 0.1;

/// `ANALYZE` each of the database's own tables (ours; the queue has [`analyze_if_changed`]) whose rows changed by
/// more than autovacuum's rule for analyzing since their statistics were taken, when the sweep vacuums (`mode`, as
/// [`vacuum_churned`]), one process at a time. Returns the tables analyzed.
///
/// The vacuum rule counts dead rows, so it never reaches a table that only grows (ingested events, the attempt log).
/// Without statistics the planner takes such a table for a few hundred rows, and a plan cached while it was small
/// (a prepared statement's generic plan) keeps scanning it whole as it grows: on a fresh database with autovacuum
/// off, loading one delivery for its send scanned every ingested event and took 4–5 ms after 20 s at 200 events/s
/// (docs/benchmarks.md, "The hand-off"). An `ANALYZE` also invalidates the plans cached on it.
pub async fn analyze_grown(pool: &PgPool, vacuum: Vacuum) -> Result<Vec<String>, sqlx::Error> {
    if vacuum.mode == VacuumMode::Never {
        return Ok(Vec::new());
    }
    let Some(mut tx) = super::begin_alone(pool, "analyze").await? else {
        return Ok(Vec::new());
    };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables
         WHERE ($1 OR NOT current_setting('autovacuum')::bool) AND relid <> 'apalis.jobs'::regclass
           AND n_mod_since_analyze > $2 + $3 * n_live_tup
         ORDER BY n_mod_since_analyze DESC",
    )
    .bind(vacuum.mode == VacuumMode::Always)
    .bind(ANALYZE_BASE)
    .bind(ANALYZE_SHARE)
    .fetch_all(&mut *tx)
    .await?;
    on_each(&mut tx, "ANALYZE", &tables).await?;
    tx.commit().await?;
    Ok(tables)
}

/// Run `command` (a constant: VACUUM, ANALYZE) on each of `tables`, names quoted by `format('%I.%I')` (identifiers,
/// not input).
async fn on_each(
    conn: &mut sqlx::PgConnection,
    command: &'static str,
    tables: &[String],
) -> Result<(), sqlx::Error> {
    for table in tables {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{command} {table}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
