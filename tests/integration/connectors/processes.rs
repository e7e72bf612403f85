//! Worker processes sharing one database: one poll per interval, one rate limit per config.

use super::*;

/// An API-only test app on the real clock, and the environment of worker processes sharing its database.
async fn app_for_processes(
    max_inline_wait_ms: u64,
    fake: &FakeChannels,
) -> (TestApp, BTreeMap<String, String>) {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    fake.configure(&mut config);
    config.connectors.max_inline_wait_ms = max_inline_wait_ms;
    let key = config.secrets.master_key.expose().to_owned();
    let url = db.url.clone();
    // The API schedules polls by the same (real) clock as the worker processes.
    let clock = jobs::ManualClock::new(t0());
    let app = TestApp::spawn_with_clock(
        std::sync::Arc::new(db),
        config,
        Roles::API,
        clock,
        std::sync::Arc::new(jobs::SystemClock),
    )
    .await;
    let env: BTreeMap<String, String> = [
        ("DATABASE_URL", url),
        ("SS3_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("SS3_SECRETS__MASTER_KEY", key),
        ("SS3_WORKER__POLL_INTERVAL_MS", "50".into()),
        ("SS3_WORKER__HEARTBEAT_INTERVAL_SECS", "1".into()),
        (
            "SS3_CONNECTORS__MAX_INLINE_WAIT_MS",
            max_inline_wait_ms.to_string(),
        ),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(fake.env())
    .collect();
    (app, env)
}

/// Catches: two worker processes running the same poll, or polling more than once per interval.
#[tokio::test]
async fn two_worker_processes_never_run_the_same_poll_twice() {
    let fake = FakeChannels::start().await;
    let (app, env) = app_for_processes(5000, &fake).await;
    fake.add_order("113-9", "2026-11-20T10:00:00Z");
    let spawned = std::time::Instant::now();
    let mut w1 = ServiceProcess::spawn("worker", &env, "poll-worker-1");
    let mut w2 = ServiceProcess::spawn("worker", &env, "poll-worker-2");
    let id = create_id(&app, &amazon_body(1)).await;
    // The behaviour under test is what two workers do over time: let them run for more than one poll interval.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Graceful stop, both at once: a poll in flight finishes and is written, so every request to the fake has its
    // log row.
    let stop_1 = tokio::task::spawn_blocking(move || w1.terminate(Duration::from_secs(20)));
    let stop_2 = tokio::task::spawn_blocking(move || w2.terminate(Duration::from_secs(20)));
    let (stopped_1, stopped_2) = (stop_1.await.expect("join"), stop_2.await.expect("join"));
    assert!(stopped_1 && stopped_2, "workers drained and exited");
    // The workers polled from their start until they exited: six seconds, plus however long stopping took on a
    // busy machine.
    let ran_for = spawned.elapsed().as_secs() as usize;

    let first_pages: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/2026-01-01/orders")
        .collect();
    let runs = sync_log(&app, &id, "direction=INBOUND&limit=200").await;
    assert!(runs.len() >= 3, "polls ran every second: {}", runs.len());
    assert!(
        runs.len() <= ran_for + 1,
        "at most one poll per 1 s interval in {ran_for} s: {}",
        runs.len()
    );
    assert_eq!(
        first_pages.len(),
        runs.len(),
        "every request belongs to exactly one logged poll"
    );
    let mut seqs: Vec<i64> = runs.iter().filter_map(|r| r.poll_seq).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), runs.len(), "no poll number ran twice");
    let workers: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.worker.as_str()).collect();
    for pair in first_pages.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "two polls {gap:?} apart (workers {workers:?})"
        );
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'marketplace.order.received'"
        )
        .await,
        1
    );
}

/// Catches: a config's rate limit applied per process, so N workers call the channel N times too fast.
#[tokio::test]
async fn two_worker_processes_share_one_rate_limit_per_config() {
    let fake = FakeChannels::start().await;
    let (app, env) = app_for_processes(200, &fake).await;
    let id = rate_limited_backlog(&app, 4.0, 10).await;
    let _w1 = ServiceProcess::spawn("worker", &env, "rate-worker-1");
    let _w2 = ServiceProcess::spawn("worker", &env, "rate-worker-2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = jobs(&app, &id, "").await;
        if jobs.len() == 10 && jobs.iter().all(|j| j.status == "SUCCEEDED") {
            assert!(jobs.iter().all(|j| j.attempt_number == 1), "{jobs:?}");
            break;
        }
        not_yet(deadline, &jobs).await;
    }
    let mut calls = fake.calls();
    calls.sort_by_key(|c| c.at);
    let patches = calls.iter().filter(|c| c.method == "PATCH").count();
    assert_eq!(patches, 10, "each SKU once");
    // Turns are 250 ms apart in Postgres; arrivals at the fake carry each process's scheduling jitter, so the
    // check is on rate, not on single gaps: any second holds at most 4 calls plus the burst of 1 (two processes
    // limited each on its own would put ~8 there), and the whole run takes at least its turns' length.
    let windows: Vec<usize> = calls
        .iter()
        .map(|c| {
            calls
                .iter()
                .filter(|d| d.at >= c.at && d.at - c.at < Duration::from_secs(1))
                .count()
        })
        .collect();
    assert!(
        windows.iter().all(|&n| n <= 5),
        "more than 5 calls within a second at 4 per second across both processes: {windows:?}"
    );
    let span = calls[calls.len() - 1].at - calls[0].at;
    let turns = Duration::from_millis(250) * (calls.len() as u32 - 1);
    assert!(
        span >= turns.mul_f64(0.9),
        "{} calls in {span:?}: faster than 4 per second across both processes",
        calls.len()
    );
    let log = sync_log(&app, &id, "limit=200").await;
    let workers: std::collections::BTreeSet<&str> = log.iter().map(|r| r.worker.as_str()).collect();
    eprintln!(
        "jobs ran on {} worker process(es): {workers:?}",
        workers.len()
    );
}

/// Catches: marketplace calls made outside any exported span (an operator tracing a connector would see nothing of
/// its calls to Amazon).
#[tokio::test]
async fn a_worker_exports_a_client_span_for_each_marketplace_call() {
    let fake = FakeChannels::start().await;
    let (app, mut env) = app_for_processes(5000, &fake).await;
    let mut collector = crate::common::otlp::Collector::start().await;
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint());
    env.insert("SS3_TELEMETRY__EXPORT_INTERVAL_MS".into(), "100".into());
    env.insert("RUST_LOG".into(), "info".into());
    let _worker = ServiceProcess::spawn("worker", &env, "traced-connector-worker");
    create_id(&app, &amazon_body(1)).await;
    let port = fake.url().rsplit(':').next().unwrap_or_default().to_owned();
    let to_the_fake = |spans: &[(String, opentelemetry_proto::tonic::trace::v1::Span)]| {
        spans.iter().any(|(_, s)| {
            let a = crate::common::otlp::attributes(s);
            a.get("server.port") == Some(&port) && a.contains_key("http.response.status_code")
        })
    };
    collector.until(Duration::from_secs(30), to_the_fake).await;
}
