//! Fair claiming: due jobs are claimed by lane (a job's owner: its subscription or connector, see [`crate::Job::lane`]),
//! so that one owner with a slow receiver or a large backlog cannot hold every worker slot or push everyone else
//! to the back of the queue.
//!
//! - **Per-lane concurrency.** A lane has at most its limit of jobs claimed at once (`Queued` or `Running` in
//!   `apalis.jobs`), across every worker process: the limit set for its owner within the operator's bounds, or the
//!   default; 1 while the lane is slow (the circuit breaker). The rule is [`workflows::lanes`]; the statement
//!   below applies it in SQL. Slots a lane cannot use go to other lanes. The count is read from the jobs
//!   themselves, so a killed worker leaks nothing: its jobs free their lane when the lease rescue puts them back.
//! - **Turns.** Each claim walks the lanes that have waiting jobs in lane order, from where this worker's previous
//!   claim stopped (a cursor, wrapping around), and takes from each due lane at most its free room, interleaving
//!   the lanes' oldest jobs. A lane with 10,000 waiting jobs gets one turn per round like a lane with one.
//! - **Cost.** The walk is a loose index scan (one index descent per lane visited, at most a few per free slot),
//!   never a scan of the waiting jobs: a claim costs the same with 10 or 10,000 lanes holding due work.
//!
//! - **The hand-off.** Jobs the ingest queues for a worker of its own process are written claimed by it under these
//!   same rules, with the same lock and room (`super::push`), and only in lanes with no due job waiting.
//!
//! Two statements in one transaction: the first walks the lanes and takes a transaction-scoped advisory lock per
//! due lane (lanes another worker is claiming right now are skipped); the second, whose snapshot is taken after
//! those locks, counts each locked lane's jobs in flight and claims within its room. A lane's count therefore
//! always includes the claims of a worker that held its lock before (and committed). Claimed jobs are written
//! exactly as apalis' own `get_jobs` writes them (`Queued`, `lock_by`, `lock_at`).

use std::str::FromStr;

use apalis_core::task::task_id::TaskId;
use sqlx::{PgConnection, PgPool};

use crate::job::QUEUE;
pub use workflows::lanes::LaneLimits;

/// A claimed job.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// apalis' task id.
    pub task_id: TaskId,
    /// Attempts apalis counted before this claim (infrastructure failures of this job).
    pub attempts: usize,
    /// The encoded [`crate::Job`].
    pub payload: Vec<u8>,
}

/// Where a worker's next claim resumes its walk over the lanes.
#[derive(Debug, Default)]
pub struct Cursor(Option<String>);

/// The jobs of our queue a claim may take (apalis' own condition; the lane index is partial on it).
const CLAIMABLE: &str = "job_type = 'integration-service'
    AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))";

/// Claim up to `limit` due jobs, fairly across lanes, for `worker`.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    limit: usize,
    limits: LaneLimits,
    cursor: &mut Cursor,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    debug_assert_eq!(QUEUE, "integration-service", "CLAIMABLE names the queue");
    let mut tx = pool.begin().await?;
    let lanes = due_lanes(&mut tx, limit.max(1), cursor).await?;
    if lanes.is_empty() {
        return Ok(Vec::new());
    }
    // Each lane locks at most twice its fair share of the claim (and never more than its room): enough slack for
    // lanes with fewer due jobs, without locking ten jobs per lane to take one.
    let share = (2 * limit.max(1)).div_ceil(lanes.len());
    let rows: Vec<(String, i32, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(claim_sql()))
        .bind(&lanes)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::from(limits.slow_after.max(1)))
        .bind(i64::from(limits.default_in_flight.max(1)))
        .bind(i64::from(limits.max_in_flight.max(1)))
        .bind(worker)
        .bind(i64::try_from(share).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, attempts, payload)| {
            let task_id = TaskId::from_str(&id)
                .inspect_err(|e| tracing::error!(%id, error = %e, "claimed a job whose id apalis cannot read"))
                .ok()?;
            Some(ClaimedJob {
                task_id,
                attempts: usize::try_from(attempts).unwrap_or_default(),
                payload,
            })
        })
        .collect())
}

/// Up to `wanted` lanes with due jobs, each locked for this transaction, walking on from `cursor` (wrapping
/// around once). Visits at most a few lanes per wanted one, so lanes whose jobs all wait for later (retries
/// scheduled hours ahead) cannot make a claim walk far.
async fn due_lanes(
    conn: &mut PgConnection,
    wanted: usize,
    cursor: &mut Cursor,
) -> Result<Vec<String>, sqlx::Error> {
    let budget = wanted.saturating_mul(4).max(16);
    let mut found: Vec<String> = Vec::new();
    let mut visited = 0;
    let mut wrapped = cursor.0.is_none();
    while found.len() < wanted && visited < budget {
        let still = wanted - found.len();
        let walk = walk_lanes(conn, cursor.0.as_deref(), budget - visited, still).await?;
        visited += walk.visited.max(1);
        for lane in walk.due {
            if !found.contains(&lane) {
                found.push(lane);
            }
        }
        cursor.0 = walk.last;
        if cursor.0.is_none() {
            // The walk reached the last lane: the next one starts from the first.
            if wrapped {
                break;
            }
            wrapped = true;
        }
    }
    found.truncate(wanted);
    Ok(found)
}

/// What one walk over the lanes saw.
struct Walk {
    /// Lanes with due work, now locked by this transaction.
    due: Vec<String>,
    /// Lanes visited.
    visited: usize,
    /// The last lane visited, `None` when the walk reached the end.
    last: Option<String>,
}

/// Visit lanes with waiting jobs after `after` (from the first when `None`), in lane order, until `wanted` due ones
/// were seen or `most` visited. The walk stops at the last lane it needed, so the next claim resumes right after
/// the lanes this one served and every due lane gets its turn.
async fn walk_lanes(
    conn: &mut PgConnection,
    after: Option<&str>,
    most: usize,
    wanted: usize,
) -> Result<Walk, sqlx::Error> {
    let rows: Vec<(String, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(walk_sql()))
        .bind(after)
        .bind(i32::try_from(most).unwrap_or(i32::MAX))
        .bind(i32::try_from(wanted).unwrap_or(i32::MAX))
        .fetch_all(&mut *conn)
        .await?;
    let visited = rows.len();
    let seen_due = rows.iter().filter(|(_, due)| *due).count();
    // Short of both bounds: the walk ran off the last lane.
    let reached_end = visited < most && seen_due < wanted;
    let last = (!reached_end)
        .then(|| rows.last().map(|(lane, _)| lane.clone()))
        .flatten();
    Ok(Walk {
        due: rows
            .into_iter()
            .filter_map(|(lane, due)| due.then_some(lane))
            .collect(),
        visited,
        last,
    })
}

/// The two statements of a claim, as sent: the walk over the lanes (`$1` the lane to start after or NULL, `$2` the
/// most lanes to visit, `$3` the due lanes wanted; returns each lane and whether it is due and now locked) and the
/// claim (`$1` the locked lanes, `$2` the limit, `$3`..`$5` slow_after, default_in_flight, max_in_flight, `$6` the
/// worker, `$7` the most jobs one lane may lock). For
/// `EXPLAIN` in ss3-bench's claim suite, so the plans measured there are of the very text the workers run.
pub fn statements() -> (String, String) {
    (walk_sql(), claim_sql())
}

/// The claim statement: each locked lane's room, then up to that many of its oldest due jobs, interleaved by turn.
fn claim_sql() -> String {
    let room = room_sql("l.lane", 3, 4, 5);
    format!(
        "WITH lanes AS (
             SELECT l.lane, l.turn, {room} AS room
             FROM unnest($1::text[]) WITH ORDINALITY AS l(lane, turn)
             LEFT JOIN outbound_lanes o ON o.lane = l.lane::uuid
         ), candidates AS (
             SELECT j.id, l.turn, row_number() OVER (PARTITION BY l.lane ORDER BY j.run_at) AS nth
             FROM lanes l CROSS JOIN LATERAL (
                 SELECT id, run_at FROM apalis.jobs
                 WHERE {CLAIMABLE} AND metadata -> 'lane' = l.lane AND run_at <= now()
                 ORDER BY run_at LIMIT LEAST(GREATEST(l.room, 0), $7)
                 FOR UPDATE SKIP LOCKED) j
         ), picked AS (
             SELECT id FROM candidates ORDER BY nth, turn LIMIT $2
         )
         UPDATE apalis.jobs j SET status = 'Queued', lock_by = $6, lock_at = now()
         FROM picked WHERE j.id = picked.id
         RETURNING j.id, j.attempts, j.job"
    )
}

/// The walk: a loose index scan over the lanes with waiting jobs (one index descent per lane, and one to see
/// whether it has a job due), from a seed row at the lane to start after, stopping once `$3` due lanes were seen or
/// `$2` lanes visited, and an advisory lock on each due one.
fn walk_sql() -> String {
    let due = due_in_lane_sql("nxt.lane");
    let lock = try_lock_lane_sql("lane");
    format!(
        "WITH RECURSIVE walk(lane, n, due, found) AS (
             SELECT COALESCE($1, ''), 0, FALSE, 0
             UNION ALL
             SELECT x.lane, w.n + 1, x.due, w.found + x.due::int
             FROM walk w CROSS JOIN LATERAL (
                 SELECT nxt.lane, EXISTS ({due}) AS due
                 FROM (SELECT (SELECT metadata -> 'lane' FROM apalis.jobs
                               WHERE {CLAIMABLE} AND metadata -> 'lane' > w.lane
                               ORDER BY metadata -> 'lane' LIMIT 1) AS lane) nxt) x
             WHERE w.lane IS NOT NULL AND w.n < $2 AND w.found < $3
         )
         SELECT lane, CASE WHEN due THEN {lock} ELSE FALSE END
         FROM walk WHERE n > 0 AND lane IS NOT NULL ORDER BY n"
    )
}

/// A lane's room, in SQL: its limit (1 while it is slow; else its owner's limit within the bounds, or the default)
/// less its jobs claimed now (`Queued` or `Running`, by any worker). `lane` names the lane's column, joined to
/// `outbound_lanes o`; the numbers are the parameters holding slow_after, default_in_flight and max_in_flight.
pub(super) fn room_sql(
    lane: &str,
    slow_after: u8,
    default_in_flight: u8,
    max_in_flight: u8,
) -> String {
    format!(
        "(CASE WHEN COALESCE(o.consecutive_slow, 0) >= ${slow_after} THEN 1
               ELSE LEAST(COALESCE(o.max_in_flight, ${default_in_flight}), ${max_in_flight}) END
          - (SELECT count(*) FROM apalis.jobs b
             WHERE b.metadata -> 'lane' = {lane} AND b.status IN ('Queued', 'Running')))"
    )
}

/// Take a lane's claim lock for the transaction if no other transaction holds it, in SQL (true when taken): every
/// claim and hand-off of the lane named by `lane` holds it while it counts the lane's room and claims within it.
pub(super) fn try_lock_lane_sql(lane: &str) -> String {
    format!("pg_try_advisory_xact_lock(hashtextextended('ss3-lane:' || {lane}, 0))")
}

/// The due jobs of a lane, in SQL (for `EXISTS`): claimable, in the lane named by `lane`, `run_at` passed.
pub(super) fn due_in_lane_sql(lane: &str) -> String {
    format!(
        "SELECT 1 FROM apalis.jobs
         WHERE {CLAIMABLE} AND metadata -> 'lane' = {lane} AND run_at <= now()"
    )
}
