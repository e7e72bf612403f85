//! Claim suite: the cost of one fair claim (`jobs::queue::claim::claim`) when many lanes hold due work, against
//! the same due jobs in few lanes. `apalis.jobs` is filled with SQL (no service, no receiver): only the claim runs,
//! so the figures are the statement pair's own latency on this Postgres.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use apalis_core::worker::context::WorkerContext;
use jobs::queue::claim::{self, Cursor, LaneLimits};
use sqlx::PgPool;

use super::webhooks::Scenario;
use super::{BenchArgs, percentile};
use integration_service::config::Config;

/// The worker name the claims are made as.
const WORKER: &str = "bench-claim";

/// One row of figures per lane count.
pub(super) async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "| lanes | due jobs | due per lane | jobs scheduled later | in lanes | claims | limit | p50 ms | p95 ms | p99 ms | max ms | jobs/claim | lanes/claim | jobs claimed per lane | lanes never claimed from |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &lanes in &args.claim_lanes {
        scenario(&config, &args, lanes).await?;
    }
    Ok(())
}

/// A fresh database holding `lanes` lanes that share `args.claim_due` due jobs: the timed claims, then the plans.
/// The database is dropped whatever happens.
async fn scenario(base: &Config, args: &BenchArgs, lanes: usize) -> anyhow::Result<()> {
    let scenario = Scenario::new(base).await?;
    let pool = PgPool::connect(scenario.config.database_url.expose()).await;
    let result = match &pool {
        Ok(pool) => measure(pool, base.lanes.limits(), args, lanes).await,
        Err(e) => Err(anyhow::anyhow!("cannot connect to the bench database: {e}")),
    };
    if let Ok(pool) = pool {
        pool.close().await;
    }
    scenario.drop_db().await;
    result
}

/// Migrate and fill the database, print the plans (with `--explain`; rolled back), time the claims, print their row.
async fn measure(
    pool: &PgPool,
    limits: LaneLimits,
    args: &BenchArgs,
    lanes: usize,
) -> anyhow::Result<()> {
    integration_service::db::migrate(pool).await?;
    let per_lane = args.claim_due.div_ceil(lanes.max(1));
    fill(
        pool,
        lanes,
        per_lane,
        args.claim_later,
        args.claim_later_lanes,
    )
    .await?;
    jobs::queue::register(pool, &WorkerContext::new(WORKER)).await?;
    if args.explain {
        explain(pool, lanes, args.claim_limit, limits).await?;
    }
    let timed = timed_claims(pool, args.claims, args.claim_limit, limits).await?;
    let (fewest, most, starved) = spread(pool, &timed.per_lane).await?;
    println!(
        "| {lanes} | {} | {per_lane} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {fewest}–{most} | {starved} |",
        lanes * per_lane,
        args.claim_later,
        match (args.claim_later, args.claim_later_lanes) {
            (0, _) => "—".to_owned(),
            (_, 0) => "the due ones".to_owned(),
            (_, others) => format!("{others} others"),
        },
        args.claims,
        args.claim_limit,
        percentile(&timed.latencies_us, 0.50),
        percentile(&timed.latencies_us, 0.95),
        percentile(&timed.latencies_us, 0.99),
        percentile(&timed.latencies_us, 1.0),
        timed.jobs as f64 / args.claims.max(1) as f64,
        timed.lanes as f64 / args.claims.max(1) as f64,
    );
    Ok(())
}

/// Insert `per_lane` due jobs in each of `lanes` new lanes (due from a minute ago, oldest first) and `later` jobs
/// due hours ahead spread over the same lanes, or over `later_lanes` lanes of their own when it is not 0, as
/// `jobs::queue::push` writes them (payload, lane, queue), then vacuum, analyze (as the worker's sweep refreshes
/// statistics) and checkpoint.
async fn fill(
    pool: &PgPool,
    lanes: usize,
    per_lane: usize,
    later: usize,
    later_lanes: usize,
) -> anyhow::Result<()> {
    for (table, count) in [("bench_lanes", lanes), ("bench_later_lanes", later_lanes)] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} AS SELECT n, gen_random_uuid() AS lane FROM generate_series(0, $1 - 1) n"
        )))
        .bind(i64::try_from(count)?)
        .execute(pool)
        .await?;
    }
    let later_table = if later_lanes == 0 {
        "bench_lanes"
    } else {
        "bench_later_lanes"
    };
    // Jobs due hours ahead are written as `jobs::queue::push` writes them: parked where the build parks them.
    let insert = |rows: &str| {
        format!(
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority,
                                      metadata, idempotency_key)
             SELECT convert_to(json_build_object('kind', 'webhook_delivery', 'delivery_id', d.delivery,
                                                 'dispatch_seq', 1, 'subscription_id', d.lane)::text, 'UTF8'),
                    apalis.generate_ulid(), 'integration-service', 'Pending', 0, 25, d.run_at, 0,
                    hstore(CASE WHEN d.run_at > now() + interval '2 minutes'
                                     AND to_regclass('apalis.apalis_jobs_parked') IS NOT NULL
                                THEN 'parked' ELSE 'lane' END, d.lane::text),
                    'delivery:' || d.delivery || ':attempt:1'
             FROM {rows}"
        )
    };
    // Due: every lane, `per_lane` jobs each. (gen_random_uuid() in the select list: evaluated once per row.)
    sqlx::query(sqlx::AssertSqlSafe(insert(
        "(SELECT l.lane, gen_random_uuid() AS delivery,
                 now() - interval '60 seconds' + k * interval '1 ms' AS run_at
          FROM bench_lanes l CROSS JOIN generate_series(1, $1) k) d",
    )))
    .bind(i64::try_from(per_lane)?)
    .execute(pool)
    .await?;
    // Later: round-robin over their lanes, due in 2 to 5 hours.
    let later_rows = format!(
        "(SELECT l.lane, gen_random_uuid() AS delivery,
                 now() + interval '2 hours' + (g % 10800) * interval '1 second' AS run_at
          FROM generate_series(0, $1 - 1) g JOIN {later_table} l ON l.n = g % $2) d"
    );
    sqlx::query(sqlx::AssertSqlSafe(insert(&later_rows)))
        .bind(i64::try_from(later)?)
        .bind(i64::try_from(if later_lanes == 0 {
            lanes
        } else {
            later_lanes
        })?)
        .execute(pool)
        .await?;
    // Hint bits set, statistics fresh, and the fill's dirty pages written out: otherwise the first claims evict
    // (write) the fill's pages themselves, which no claim of a running service pays.
    sqlx::raw_sql("VACUUM (ANALYZE) apalis.jobs")
        .execute(pool)
        .await?;
    sqlx::raw_sql("CHECKPOINT").execute(pool).await?;
    Ok(())
}

/// What the timed claims took and got.
struct Timed {
    /// Latency of each claim, sorted.
    latencies_us: Vec<u64>,
    /// Jobs claimed in all.
    jobs: usize,
    /// Sum over the claims of the distinct lanes each one claimed from.
    lanes: usize,
    /// Jobs claimed per lane over the run.
    per_lane: HashMap<String, i64>,
}

/// `claims` claims of up to `limit` jobs, each timed alone; between two claims (untimed) the claimed jobs are
/// deleted, as the worker's acknowledgement does (`worker.job_retention_secs` = 0, the default), so every lane has
/// its room again.
async fn timed_claims(
    pool: &PgPool,
    claims: usize,
    limit: usize,
    limits: LaneLimits,
) -> anyhow::Result<Timed> {
    let mut cursor = Cursor::default();
    let mut timed = Timed {
        latencies_us: Vec::with_capacity(claims),
        jobs: 0,
        lanes: 0,
        per_lane: HashMap::new(),
    };
    for _ in 0..claims {
        let started = Instant::now();
        let batch = claim::claim(pool, WORKER, limit, limits, &mut cursor).await?;
        timed
            .latencies_us
            .push(u64::try_from(started.elapsed().as_micros())?);
        let ids: Vec<String> = batch.iter().map(|j| j.task_id.to_string()).collect();
        let lanes: Vec<String> = sqlx::query_scalar(
            "DELETE FROM apalis.jobs WHERE id = ANY($1) RETURNING metadata -> 'lane'",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        timed.jobs += batch.len();
        for lane in &lanes {
            *timed.per_lane.entry(lane.clone()).or_default() += 1;
        }
        timed.lanes += lanes.into_iter().collect::<HashSet<_>>().len();
    }
    timed.latencies_us.sort_unstable();
    Ok(timed)
}

/// The fewest and most jobs claimed from one lane over the run (`per_lane`), and the lanes never claimed from:
/// lanes taking strict turns would all be within one of each other (while every lane still has due jobs).
async fn spread(pool: &PgPool, per_lane: &HashMap<String, i64>) -> anyhow::Result<(i64, i64, i64)> {
    let lanes: Vec<String> = sqlx::query_scalar("SELECT lane::text FROM bench_lanes")
        .fetch_all(pool)
        .await?;
    let counts: Vec<i64> = lanes
        .iter()
        .map(|lane| per_lane.get(lane).copied().unwrap_or(0))
        .collect();
    let starved = counts.iter().filter(|c| **c == 0).count();
    Ok((
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
        i64::try_from(starved)?,
    ))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the walk (from the first lane, for `limit` due lanes within a claim's budget of
/// 4 × `limit` visits) and of the claim statement on the lanes that walk found, in a transaction rolled back
/// afterwards.
async fn explain(
    pool: &PgPool,
    lanes: usize,
    limit: usize,
    limits: LaneLimits,
) -> anyhow::Result<()> {
    let (walk, claim) = claim::statements();
    let mut tx = pool.begin().await?;
    let most = i32::try_from(limit.saturating_mul(4).max(16))?;
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) {walk}"
    )))
    .bind(None::<String>)
    .bind(most)
    .bind(i32::try_from(limit)?)
    .fetch_all(&mut *tx)
    .await?;
    println!("\nEXPLAIN (ANALYZE, BUFFERS) of the walk, {lanes} lanes, $2 = {most}:\n");
    println!("```\n{}\n```", plan.join("\n"));
    let walked: Vec<(String, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(walk))
        .bind(None::<String>)
        .bind(most)
        .bind(i32::try_from(limit)?)
        .fetch_all(&mut *tx)
        .await?;
    let due: Vec<String> = walked
        .into_iter()
        .filter_map(|(lane, due)| due.then_some(lane))
        .take(limit)
        .collect();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) {claim}"
    )))
    .bind(&due)
    .bind(i64::try_from(limit)?)
    .bind(i64::from(limits.slow_after.max(1)))
    .bind(i64::from(limits.default_in_flight.max(1)))
    .bind(i64::from(limits.max_in_flight.max(1)))
    .bind(WORKER)
    .bind(i64::try_from((2 * limit).div_ceil(due.len().max(1)))?)
    .fetch_all(&mut *tx)
    .await?;
    println!(
        "\nEXPLAIN (ANALYZE, BUFFERS) of the claim, {} locked lanes:\n",
        due.len()
    );
    println!("```\n{}\n```\n", plan.join("\n"));
    tx.rollback().await?;
    Ok(())
}
