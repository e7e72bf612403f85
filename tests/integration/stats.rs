//! Delivery statistics: the hourly counters written with the attempts equal a recount from the attempt log, in one
//! process with the manual clock and across two worker processes; the API reads them per store and subscription.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Duration as Minutes;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::client::{Api, JsonAnswer};
use crate::common::process::{ServiceProcess, cluster_env, wait_healthy};
use crate::common::receiver::Receiver;
use crate::common::{ADMIN_TOKEN, TestApp, TestDb, due_times, event, t0};

const WAIT: Duration = Duration::from_secs(10);

type Counts = BTreeMap<String, (Vec<i64>, BTreeMap<String, i64>)>;

/// Per subscription: the five counts of `rows` and the error classes of `errors`.
fn by_subscription(
    rows: Vec<(String, i64, i64, i64, i64, i64)>,
    errors: Vec<(String, String, i64)>,
) -> Counts {
    let mut out: Counts = rows
        .into_iter()
        .map(|(s, a, b, c, d, e)| (s, (vec![a, b, c, d, e], BTreeMap::new())))
        .collect();
    for (s, class, n) in errors {
        out.entry(s).or_default().1.insert(class, n);
    }
    out
}

/// Every counter row, hourly and daily.
const COUNTERS: &str = "(SELECT subscription_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors
      FROM webhook_stats_hourly
      UNION ALL SELECT subscription_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors
      FROM webhook_stats_daily) AS c";

/// Per subscription: [delivered first, delivered after retries, dead-lettered, retrying, attempts in the histogram],
/// and the error classes, from the counters (hourly and daily).
async fn counters(pool: &PgPool) -> Counts {
    let rows: Vec<(String, i64, i64, i64, i64, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT subscription_id::text, sum(delivered_first)::bigint, sum(delivered_retry)::bigint,
                sum(dead_lettered)::bigint, sum(retrying)::bigint,
                sum((SELECT sum(n) FROM unnest(latency) AS n))::bigint
         FROM {COUNTERS} GROUP BY 1"
    )))
        .fetch_all(pool)
        .await
        .expect("counters");
    let errors: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT subscription_id::text, e.class, sum(e.n::bigint)::bigint
         FROM {COUNTERS}, jsonb_each_text(c.errors) AS e(class, n) GROUP BY 1, 2"
    )))
    .fetch_all(pool)
    .await
    .expect("error counters");
    by_subscription(rows, errors)
}

/// The same, recounted from the attempt log (a dead letter is the fifth failure of a schedule).
async fn recount(pool: &PgPool) -> Counts {
    let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT d.subscription_id::text,
                count(*) FILTER (WHERE a.outcome = 'DELIVERED' AND a.attempt_number = 1),
                count(*) FILTER (WHERE a.outcome = 'DELIVERED' AND a.attempt_number > 1),
                count(*) FILTER (WHERE a.outcome = 'FAILED' AND a.attempt_number = 5),
                count(*) FILTER (WHERE a.outcome = 'FAILED' AND a.attempt_number < 5),
                count(*)
         FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id) GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("recount");
    let errors: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT d.subscription_id::text, a.error_class, count(*)
         FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id)
         WHERE a.outcome = 'FAILED' GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .expect("error recount");
    by_subscription(rows, errors)
}

/// Catches: counters missing an outcome (retry, dead letter, re-trigger, resend), counting an attempt twice, a wrong
/// error class, and the API reading another store's subscription.
#[tokio::test]
async fn counters_equal_a_recount_of_the_attempt_log_and_the_api_reads_them() {
    let app = TestApp::spawn().await;
    let mut dead = Receiver::start(&[500, 500, 503, 500, 500]).await;
    let mut flaky = Receiver::start(&[500]).await;
    let mut ok = Receiver::start(&[]).await;
    let (dead_sub, _) = app.subscribe("store-a", &dead.url(), &["order.*"]).await;
    let (flaky_sub, _) = app.subscribe("store-a", &flaky.url(), &["order.*"]).await;
    let (ok_sub, _) = app.subscribe("store-a", &ok.url(), &["order.*"]).await;
    app.post_event(&event("order.placed", "store-a", json!({"n": 1})))
        .await;
    let worker = app.worker("w1").await;
    for at in due_times() {
        app.clock.set(at);
        worker.run_pending_jobs().await.expect("run");
    }
    for r in [&mut dead, &mut flaky, &mut ok] {
        r.drain();
    }
    // Re-trigger the dead letter (delivered now), resend the delivered one.
    let dead_id: (uuid::Uuid,) =
        sqlx::query_as("SELECT delivery_id FROM webhook_deliveries WHERE subscription_id = $1")
            .bind(dead_sub)
            .fetch_one(&app.pool)
            .await
            .expect("dead delivery");
    let ok_id: (uuid::Uuid,) =
        sqlx::query_as("SELECT delivery_id FROM webhook_deliveries WHERE subscription_id = $1")
            .bind(ok_sub)
            .fetch_one(&app.pool)
            .await
            .expect("ok delivery");
    app.clock.set(t0() + Minutes::hours(5));
    for path in [
        format!("/deliveries/{}/retrigger", dead_id.0),
        format!("/deliveries/{}/resend", ok_id.0),
    ] {
        let r = app.as_store(Method::POST, &path, "store-a").send().await;
        assert_eq!(r.expect("request").status(), 200, "{path}");
    }
    worker.run_pending_jobs().await.expect("run");
    dead.next(WAIT).await;
    ok.next(WAIT).await;

    let counted = counters(&app.pool).await;
    assert_eq!(counted, recount(&app.pool).await);
    let dead_counts = &counted[&dead_sub.to_string()];
    assert_eq!(
        dead_counts.0,
        vec![1, 0, 1, 4, 6],
        "first-time delivery after the re-trigger"
    );
    assert_eq!(
        dead_counts.1,
        BTreeMap::from([("http_500".into(), 4), ("http_503".into(), 1)])
    );
    assert_eq!(counted[&flaky_sub.to_string()].0, vec![0, 1, 0, 1, 2]);
    assert_eq!(counted[&ok_sub.to_string()].0, vec![2, 0, 0, 0, 2]);

    let stats: Value = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{dead_sub}/stats?days=30"),
            "store-a",
        )
        .json_answer()
        .await;
    let totals = &stats["totals"];
    assert_eq!(totals["deliveredFirst"], 1);
    assert_eq!(totals["deadLettered"], 1);
    assert_eq!(totals["retriesScheduled"], 4);
    assert_eq!(totals["attempts"], 6);
    assert_eq!(totals["successRate"], 0.5);
    assert_eq!(
        totals["errors"][0],
        json!({"class": "http_500", "count": 4})
    );
    assert_eq!(stats["daily"].as_array().map(Vec::len), Some(30));
    let store: Value = app
        .as_store(Method::GET, "/stats?days=7", "store-a")
        .json_answer()
        .await;
    assert_eq!(store["totals"]["attempts"], 10);
    assert_eq!(store["daily"].as_array().map(Vec::len), Some(7));
    let other = app
        .as_store(
            Method::GET,
            &format!("/subscriptions/{dead_sub}/stats"),
            "store-b",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 404, "another store's subscription");

    // The retention pass rolls closed days up into daily rows (two hourly rows per statement here): the counters
    // and what the API answers stay the same.
    let moved = integration_service::db::stats::roll_up(&app.pool, t0() + Minutes::days(1), 2)
        .await
        .expect("roll up");
    assert!(moved >= 3, "{moved} hourly rows moved");
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_stats_hourly").await,
        0
    );
    assert_eq!(counters(&app.pool).await, counted);
    for path in [
        format!("/subscriptions/{dead_sub}/stats?days=30"),
        "/stats?days=7".to_owned(),
    ] {
        let after: Value = app
            .as_store(Method::GET, &path, "store-a")
            .json_answer()
            .await;
        let before = if path.starts_with("/stats") {
            &store
        } else {
            &stats
        };
        assert_eq!(&after, before, "{path}");
    }
}

/// Catches: counters lost or doubled when two worker processes record attempts of the same subscriptions and hours
/// at once (retries, dead letters and re-triggers in real time, scaled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_a_recount_across_two_worker_processes() {
    const EVENTS: usize = 60;
    let db = TestDb::create().await;
    let env = cluster_env(
        &db.url,
        &[
            ("SS3_WORKER__TIME_SCALE", "0.0002"),
            ("SS3_WORKER__CONCURRENCY", "8"),
            ("SS3_WORKER__POLL_INTERVAL_MS", "100"),
        ],
    );
    let api_process = ServiceProcess::spawn("api", &env, "stats-api");
    let api_url = api_process.api_url(Duration::from_secs(30)).await;
    wait_healthy(&format!("{api_url}/health"), Duration::from_secs(30)).await;
    let api = Api::new(&api_url, ADMIN_TOKEN);
    let ok = Receiver::start(&[]).await;
    let flaky = Receiver::start(&[500; EVENTS / 2]).await;
    let mut refusing = Receiver::start(&[]).await;
    refusing.stop().await;
    for url in [ok.url(), flaky.url(), refusing.url()] {
        api.create_subscription("store-a", &url, &["*"]).await;
    }
    for n in 0..EVENTS {
        api.ingest(&event("order.placed", "store-a", json!({"n": n})))
            .await;
    }
    let _workers = [
        ServiceProcess::spawn("worker", &env, "stats-worker-1"),
        ServiceProcess::spawn("worker", &env, "stats-worker-2"),
    ];
    let pool = PgPool::connect(&db.url).await.expect("pool");
    let settled =
        "SELECT count(*) FROM webhook_deliveries WHERE status IN ('DELIVERED', 'DEAD_LETTERED')";
    wait_for_count(&pool, settled, 3 * EVENTS as i64).await;
    // Re-trigger every dead letter (they die again: the receiver still refuses).
    let dead: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT delivery_id FROM webhook_deliveries WHERE status = 'DEAD_LETTERED'")
            .fetch_all(&pool)
            .await
            .expect("dead");
    assert_eq!(dead.len(), EVENTS);
    for (id,) in &dead {
        let r = api
            .request(
                Method::POST,
                &format!("/deliveries/{id}/retrigger"),
                "store-a",
            )
            .send()
            .await
            .expect("retrigger");
        assert_eq!(r.status(), 200);
    }
    let attempts = "SELECT count(*) FROM webhook_delivery_attempts";
    // ok: one each; flaky: one, plus a retry for the first half; refusing: five, twice.
    wait_for_count(
        &pool,
        attempts,
        (EVENTS + EVENTS * 3 / 2 + EVENTS * 10) as i64,
    )
    .await;
    wait_for_count(&pool, settled, 3 * EVENTS as i64).await;
    assert_eq!(counters(&pool).await, recount(&pool).await);
}

async fn wait_for_count(pool: &PgPool, sql: &'static str, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.expect("count");
        if n >= want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {n} of {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
