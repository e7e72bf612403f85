//! Queuing jobs in the caller's transaction, and, when a worker of this process has free slots, claiming the ones it
//! may take in the same insert (the hand-off).
//!
//! A job is written with apalis' columns as its `push_tasks` writes them (`Pending`, a ULID id, `run_at` in whole
//! seconds, the idempotency key, the lane in `metadata`). A job handed off is written already claimed, as our claim
//! writes a claimed job (`Queued`, `lock_by`, `lock_at`): the worker runs it from memory, with no NOTIFY, no walk over
//! the lanes, no claim transaction and one row write less. It is taken only under the claim's own rules, so the
//! hand-off never lets a lane exceed its room nor jump its own queue:
//! - only jobs due now, in lanes this transaction holds the claim's advisory lock of (a lane another worker is
//!   claiming right now is left to the claim);
//! - only in lanes with no due job waiting (those are served in turn by the claim, oldest first), up to each lane's
//!   room (its limit less its jobs in flight, counted after the lock, by the claim's formula), and at most as many
//!   jobs as the worker reserved slots for.
//!
//! Whatever is not taken waits `Pending` for a claim, as before. A job taken and then lost (its process killed, the
//! commit's answer lost) is a claimed job whose lease expires: the rescue puts it back.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use apalis_core::task::task_id::TaskId;
use sqlx::PgConnection;
use sqlx::postgres::types::PgHstore;

use super::MAX_INFRA_RETRIES;
use super::claim::{self, ClaimedJob, LaneLimits};
use super::parked;
use crate::Job;
use crate::job::QUEUE;

/// A worker of this process that may take jobs as they are queued.
#[derive(Debug, Clone, Copy)]
pub struct Taker<'a> {
    /// Its name (`lock_by`).
    pub worker: &'a str,
    /// The most jobs it takes (its free slots, reserved).
    pub most: usize,
    /// The lanes' limits, as its claims apply them.
    pub limits: LaneLimits,
}

/// Queue `jobs` (each with the real delay before it is due) in the caller's transaction; those due later than
/// [`parked::PARK_BEYOND`] are parked.
pub async fn push(
    conn: &mut PgConnection,
    jobs: Vec<(Job, Duration)>,
) -> Result<(), apalis_postgres::Error> {
    push_taking(conn, jobs, None)
        .await
        .map(drop)
        .map_err(apalis_postgres::Error::Database)
}

/// [`push`], and claim for `taker` the jobs it may take (see the module's rules); returns those, claimed.
pub async fn push_taking(
    conn: &mut PgConnection,
    jobs: Vec<(Job, Duration)>,
    taker: Option<Taker<'_>>,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Rows::of(jobs);
    let taker = taker.filter(|t| t.most > 0);
    let locked = match taker {
        Some(_) => lock_lanes(conn, &rows.due_lanes).await?,
        None => Vec::new(),
    };
    let limits = taker.map(|t| t.limits).unwrap_or_default();
    let taken: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(INSERT.as_str()))
        .bind(&rows.ids)
        .bind(QUEUE)
        .bind(&rows.payloads)
        .bind(&rows.run_at)
        .bind(&rows.metadata)
        .bind(&rows.idempotency_keys)
        .bind(i32::try_from(MAX_INFRA_RETRIES).unwrap_or(i32::MAX))
        .bind(&locked)
        .bind(i64::from(limits.slow_after.max(1)))
        .bind(i64::from(limits.default_in_flight.max(1)))
        .bind(i64::from(limits.max_in_flight.max(1)))
        .bind(taker.map(|t| t.worker))
        .bind(i64::try_from(taker.map_or(0, |t| t.most)).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let mut payloads: HashMap<String, Vec<u8>> = rows.ids.into_iter().zip(rows.payloads).collect();
    Ok(taken
        .into_iter()
        .filter_map(|id| {
            let payload = payloads.remove(&id)?;
            let task_id = id.parse::<TaskId>().ok()?;
            Some(ClaimedJob {
                task_id,
                attempts: 0,
                payload,
            })
        })
        .collect())
}

/// The columns of the jobs to insert, and the lanes of those due now.
struct Rows {
    ids: Vec<String>,
    payloads: Vec<Vec<u8>>,
    run_at: Vec<i64>,
    metadata: Vec<PgHstore>,
    idempotency_keys: Vec<String>,
    due_lanes: Vec<String>,
}

impl Rows {
    fn of(jobs: Vec<(Job, Duration)>) -> Self {
        let now = SystemTime::now();
        let mut rows = Self {
            ids: Vec::with_capacity(jobs.len()),
            payloads: Vec::with_capacity(jobs.len()),
            run_at: Vec::with_capacity(jobs.len()),
            metadata: Vec::with_capacity(jobs.len()),
            idempotency_keys: Vec::with_capacity(jobs.len()),
            due_lanes: Vec::new(),
        };
        for (job, delay) in jobs {
            let lane = job.lane().to_string();
            let key = if parked::parks(delay) {
                parked::PARKED
            } else {
                "lane"
            };
            if delay.is_zero() && !rows.due_lanes.contains(&lane) {
                rows.due_lanes.push(lane.clone());
            }
            let mut metadata = PgHstore::default();
            metadata.insert(key.to_owned(), Some(lane));
            let run_at = (now + delay)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            rows.ids.push(ulid::Ulid::generate().to_string());
            rows.payloads.push(job.encode());
            rows.run_at.push(i64::try_from(run_at).unwrap_or(i64::MAX));
            rows.metadata.push(metadata);
            rows.idempotency_keys.push(job.idempotency_key());
        }
        rows
    }
}

/// Take the claim's advisory lock of each of `lanes` that no other transaction holds; returns those locked (until
/// the caller's transaction ends). A statement of its own: the insert's count of each lane's jobs in flight then
/// sees the claims of any worker that held the lock before.
async fn lock_lanes(conn: &mut PgConnection, lanes: &[String]) -> Result<Vec<String>, sqlx::Error> {
    if lanes.is_empty() {
        return Ok(Vec::new());
    }
    static LOCK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let lock = claim::try_lock_lane_sql("lane");
        format!("SELECT lane FROM unnest($1::text[]) AS l(lane) WHERE {lock}")
    });
    sqlx::query_scalar(sqlx::AssertSqlSafe(LOCK.as_str()))
        .bind(lanes)
        .fetch_all(conn)
        .await
}

/// The insert: every job, those picked for the taker written claimed; returns the ids of those. `$8` the locked
/// lanes, `$9`..`$11` slow_after, default_in_flight, max_in_flight, `$12` the taker (NULL: none), `$13` its most.
static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let room = claim::room_sql("l.lane", 9, 10, 11);
    let waiting = claim::due_in_lane_sql("l.lane");
    format!(
        "WITH new AS (
             SELECT * FROM unnest($1::text[], $3::bytea[], $4::bigint[], $5::hstore[], $6::text[])
                 WITH ORDINALITY AS n(id, job, run_at, metadata, idempotency_key, ord)
         ), lanes AS (
             SELECT l.lane, {room} AS room
             FROM unnest($8::text[]) AS l(lane) LEFT JOIN outbound_lanes o ON o.lane = l.lane::uuid
             WHERE NOT EXISTS ({waiting})
         ), picked AS (
             SELECT ord FROM (
                 SELECT n.ord, l.room, row_number() OVER (PARTITION BY l.lane ORDER BY n.ord) AS nth
                 FROM new n JOIN lanes l ON l.lane = n.metadata -> 'lane'
                 WHERE to_timestamp(n.run_at) <= now()) r
             WHERE nth <= room ORDER BY nth, ord LIMIT $13
         ), inserted AS (
             INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
                                      idempotency_key, lock_by, lock_at)
             SELECT n.id, $2, n.job, CASE WHEN p.ord IS NULL THEN 'Pending' ELSE 'Queued' END, 0, $7,
                    to_timestamp(n.run_at), 0, n.metadata, n.idempotency_key,
                    CASE WHEN p.ord IS NOT NULL THEN $12 END, CASE WHEN p.ord IS NOT NULL THEN now() END
             FROM new n LEFT JOIN picked p USING (ord)
             RETURNING id, lock_by
         )
         SELECT id FROM inserted WHERE lock_by IS NOT NULL"
    )
});
