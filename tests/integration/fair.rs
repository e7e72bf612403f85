//! Fair delivery: one store's slow, timing-out or refusing receiver, or its backlog, must not delay other stores.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use apalis_core::worker::context::WorkerContext;
use integration_service::startup::Roles;
use jobs::queue::{self, claim};
use serde_json::json;
use uuid::Uuid;

use crate::common::process::{ServiceProcess, cluster_env, wait_healthy};
use crate::common::slow::SlowReceiver;
use crate::common::{ADMIN_TOKEN, Api, Receiver, TestApp, TestDb, event, test_config};

/// Jobs each worker holds per lane: `(lane, worker) → count`.
async fn in_flight(app: &TestApp) -> HashMap<(String, String), i64> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT metadata -> 'lane', lock_by, count(*) FROM apalis.jobs
         WHERE status IN ('Queued', 'Running') GROUP BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .expect("in flight");
    rows.into_iter().map(|(l, w, n)| ((l, w), n)).collect()
}

async fn claimer(app: &TestApp, name: &str) -> WorkerContext {
    let worker = WorkerContext::new(name);
    queue::register(&app.pool, &worker).await.expect("register");
    worker
}

/// Catches: a lane with a backlog taking a whole claim, a lane holding more than its limit across workers, a slow
/// lane getting more than one job in flight, or a lane's room not freeing when its jobs finish.
#[tokio::test]
async fn each_lane_gets_its_turn_and_at_most_its_limit_across_workers() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.lanes.default_in_flight = 4;
    config.lanes.slow_after = 3;
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let (big, _) = app
        .subscribe("store-big", "http://127.0.0.1:9/big", &["*"])
        .await;
    let (small, _) = app
        .subscribe("store-small", "http://127.0.0.1:9/small", &["*"])
        .await;
    let (slow, _) = app
        .subscribe("store-slow", "http://127.0.0.1:9/slow", &["*"])
        .await;
    // The big store's backlog is older than anything of the other stores.
    for _ in 0..120 {
        app.post_event(&event("order.placed", "store-big", json!({})))
            .await;
    }
    for store in ["store-small", "store-slow"] {
        for _ in 0..3 {
            app.post_event(&event("order.placed", store, json!({})))
                .await;
        }
    }
    // The slow store's receiver timed out three times in a row (what the attempt writer records).
    sqlx::query(
        "INSERT INTO outbound_lanes (lane, consecutive_slow, slow_since) VALUES ($1, 3, now())",
    )
    .bind(slow)
    .execute(&app.pool)
    .await
    .expect("slow lane");
    let (w1, w2) = (claimer(&app, "w1").await, claimer(&app, "w2").await);
    let mut cursor = claim::Cursor::default();
    let limits = app.app.config().lanes.limits();

    // A claim of three takes one job of each lane, not the three oldest (all the big store's).
    let first = claim::claim(&app.pool, w1.name(), 3, limits, &mut cursor)
        .await
        .expect("claim");
    assert_eq!(first.len(), 3);
    let held = in_flight(&app).await;
    for lane in [big, small, slow] {
        assert_eq!(
            held.get(&(lane.to_string(), "w1".into())),
            Some(&1),
            "{held:?}"
        );
    }

    // More room: each lane up to its limit (the slow one stays at one), whoever claims.
    claim::claim(&app.pool, w1.name(), 4, limits, &mut cursor)
        .await
        .expect("claim");
    let mut other = claim::Cursor::default();
    claim::claim(&app.pool, w2.name(), 100, limits, &mut other)
        .await
        .expect("claim");
    let per_lane = |held: &HashMap<(String, String), i64>, lane: Uuid| -> i64 {
        held.iter()
            .filter(|((l, _), _)| *l == lane.to_string())
            .map(|(_, n)| n)
            .sum()
    };
    let held = in_flight(&app).await;
    assert_eq!(
        per_lane(&held, big),
        4,
        "the default limit, across both workers: {held:?}"
    );
    assert_eq!(per_lane(&held, small), 3, "all of the small store's jobs");
    assert_eq!(
        per_lane(&held, slow),
        1,
        "a slow lane has one job in flight"
    );
    assert!(
        claim::claim(&app.pool, w2.name(), 100, limits, &mut other)
            .await
            .expect("claim")
            .is_empty(),
        "every lane is at its limit or empty"
    );

    // The big store's jobs finish: its room frees, and the next claim takes its next four.
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE metadata -> 'lane' = $1 AND status = 'Queued'")
        .bind(big.to_string())
        .execute(&app.pool)
        .await
        .expect("finish");
    let next = claim::claim(&app.pool, w2.name(), 100, limits, &mut other)
        .await
        .expect("claim");
    assert_eq!(next.len(), 4);
    assert_eq!(per_lane(&in_flight(&app).await, big), 4);
}

/// Environment of a cluster of processes on one database, with HTTP ingest only: small workers, a short delivery
/// timeout, and lanes of 4 that count an attempt over 2.5 s (or timed out) as slow and trip after 3.
fn fair_env(db: &TestDb) -> BTreeMap<String, String> {
    cluster_env(
        &db.url,
        &[
            ("SS3_WORKER__CONCURRENCY", "8"),
            ("SS3_WORKER__BATCH_SIZE", "8"),
            ("SS3_WORKER__POLL_INTERVAL_MS", "100"),
            ("SS3_DELIVERY__TIMEOUT_MS", "2000"),
            ("SS3_LANES__DEFAULT_IN_FLIGHT", "4"),
            ("SS3_LANES__SLOW_MS", "2500"),
            ("SS3_LANES__SLOW_AFTER", "3"),
        ],
    )
}

/// Catches: a store whose receiver is slow, times out or refuses connections, with a backlog, holding the worker
/// slots of both processes so that another store's webhooks queue behind it (they waited ~25 s before lanes);
/// a lane exceeding its limit across processes; a receiver that keeps timing out not being recognised as slow;
/// waiting for a turn being counted as an attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_a_timing_out_and_a_refusing_receiver_do_not_delay_a_fast_store_across_two_workers()
{
    const BACKLOG: usize = 60;
    const FAST: usize = 40;
    let db = TestDb::create().await;
    let env = fair_env(&db);
    let api_process = ServiceProcess::spawn("api", &env, "fair-api");
    let api_url = api_process.api_url(Duration::from_secs(30)).await;
    wait_healthy(&format!("{api_url}/health"), Duration::from_secs(30)).await;
    let api = Api::new(&api_url, ADMIN_TOKEN);

    let slow = SlowReceiver::start(Duration::from_millis(1500)).await;
    let timing_out = SlowReceiver::start(Duration::from_secs(60)).await;
    let mut refusing = Receiver::start(&[]).await;
    refusing.stop().await;
    let mut fast = Receiver::start(&[]).await;
    let refusing_url = refusing.url();
    let noisy = [
        ("store-slow", slow.url()),
        ("store-timeout", timing_out.url()),
        ("store-refusing", refusing_url),
    ];
    let mut noisy_ids = HashMap::new();
    for (store, url) in &noisy {
        let created = api.create_subscription(store, url, &["*"]).await;
        noisy_ids.insert(*store, created.subscription.subscription_id);
    }
    api.create_subscription("store-fast", &fast.url(), &["*"])
        .await;
    // Every noisy store's backlog is queued before the fast store's first event.
    for (store, _) in &noisy {
        for _ in 0..BACKLOG {
            api.ingest(&event("order.placed", store, json!({}))).await;
        }
    }
    let _workers = [
        ServiceProcess::spawn("worker", &env, "fair-worker-1"),
        ServiceProcess::spawn("worker", &env, "fair-worker-2"),
    ];
    // Let the noisy lanes fill every slot they are allowed.
    while slow.received() < 4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut posted_at: HashMap<String, Instant> = HashMap::new();
    for _ in 0..FAST {
        let ingested = api
            .ingest(&event("order.placed", "store-fast", json!({})))
            .await;
        posted_at.insert(ingested.delivery_ids[0].to_string(), Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::new();
    while latencies.len() < FAST {
        let got = fast.next(Duration::from_secs(60)).await;
        let posted = posted_at[got.header("x-ss3-delivery")];
        latencies.push(got.at.saturating_duration_since(posted));
    }
    latencies.sort();
    let slow_done_when_fast_done = slow.received();
    // Generous: before lanes the fast store waited for the noisy backlogs (tens of seconds).
    assert!(
        latencies[FAST - 1] < Duration::from_secs(5),
        "the fast store's slowest webhook took {:?} (median {:?})",
        latencies[FAST - 1],
        latencies[FAST / 2]
    );
    assert!(
        slow_done_when_fast_done < BACKLOG,
        "the fast store was served while the slow store's backlog was still being delivered ({slow_done_when_fast_done})"
    );
    assert!(
        (2..=4).contains(&slow.most_open()),
        "the slow store proceeds in parallel, at most its limit across both workers: {}",
        slow.most_open()
    );

    // The receiver that never answers in time is recognised as slow; its waiting jobs count no attempt.
    let timeout_id = noisy_ids["store-timeout"];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sub: crate::common::client::Subscription = api
            .get("store-timeout", &format!("/subscriptions/{timeout_id}"))
            .await;
        if sub.delivery_lane.state == "slow" {
            assert_eq!(sub.delivery_lane.in_flight_limit, 1);
            assert!(sub.delivery_lane.consecutive_slow >= 3);
            break;
        }
        assert!(Instant::now() < deadline, "never marked slow: {sub:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{api_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(|l| l == "ss3_lanes_slow 1"),
        "only the timing-out store's lane is slow (the slow one answers within lanes.slow_ms):\n{metrics}"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (rows, attempts, most): (i64, i64, i32) = sqlx::query_as(
        "SELECT count(*), (SELECT count(*) FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id)
                           WHERE d.subscription_id = $1),
                COALESCE(max(attempt_number), 0)
         FROM webhook_deliveries WHERE subscription_id = $1",
    )
    .bind(timeout_id)
    .fetch_one(&pool)
    .await
    .expect("attempts");
    assert_eq!(rows, BACKLOG as i64);
    assert!(
        most <= 1,
        "no delivery made more than its first attempt yet (retries are a minute away)"
    );
    assert!(
        attempts <= timing_out.received() as i64,
        "every recorded attempt was a request the receiver got: {attempts} attempts, {} requests",
        timing_out.received()
    );
    pool.close().await;
}

/// Catches: lanes skipped when more lanes have due work than one claim takes (a walk that looked further ahead than
/// the lanes it used moved the cursor past the rest: 7,440 of 10,000 lanes starved in the bench).
#[tokio::test]
async fn when_more_lanes_are_due_than_a_claim_takes_each_gets_a_turn_before_any_gets_a_second() {
    const LANES: usize = 40;
    let app = TestApp::spawn().await;
    let mut lanes = Vec::new();
    for n in 0..LANES {
        let store = format!("store-{n}");
        let (id, _) = app
            .subscribe(&store, "http://127.0.0.1:9/hook", &["*"])
            .await;
        lanes.push(id.to_string());
        for _ in 0..3 {
            app.post_event(&event("order.placed", &store, json!({})))
                .await;
        }
    }
    let worker = claimer(&app, "w").await;
    let mut cursor = claim::Cursor::default();
    let limits = app.app.config().lanes.limits();
    for _ in 0..LANES / 8 {
        let claimed = claim::claim(&app.pool, worker.name(), 8, limits, &mut cursor)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 8);
    }
    let held = in_flight(&app).await;
    for lane in &lanes {
        assert_eq!(
            held.get(&(lane.clone(), "w".into())),
            Some(&1),
            "after {} claims of 8, each of {LANES} lanes has had one turn: {held:?}",
            LANES / 8
        );
    }
}
