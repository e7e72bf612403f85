//! Retries survive every process stopping; a worker that dies holding a job has it taken over when its lease expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Minutes;
use integration_service::startup::Roles;
use jobs::queue;
use serde_json::json;

use crate::common::{Receiver, TestApp, TestDb, event, t0, test_config};

const WAIT: Duration = Duration::from_secs(15);

/// Catches: retry state kept in memory (lost on restart) instead of the delivery row and the queue.
#[tokio::test]
async fn a_pending_retry_survives_a_restart_of_every_process_and_fires_once() {
    let db = Arc::new(TestDb::create().await);
    let config = test_config(&db);
    let mut receiver = Receiver::start(&[500]).await;
    let mut first = TestApp::spawn_with_clock(
        db.clone(),
        config.clone(),
        Roles::API,
        clock(),
        Arc::new(clock_at(t0())),
    )
    .await;
    first.subscribe("store-a", &receiver.url(), &["*"]).await;
    let id = first
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    first
        .worker("before-restart")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    receiver.next(WAIT).await;
    first.stop().await;

    // A new process: new Application, new worker name, clock at the retry's due time.
    let second = TestApp::spawn_with_clock(
        db.clone(),
        config,
        Roles::API,
        clock(),
        Arc::new(clock_at(t0() + Minutes::minutes(1))),
    )
    .await;
    let worker = second.worker("after-restart").await;
    assert_eq!(worker.run_pending_jobs().await.expect("run"), 1);
    assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);
    assert_eq!(worker.run_pending_jobs().await.expect("run"), 0);
    receiver.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(second.delivery("store-a", &id).await.status, "DELIVERED");
}

fn clock() -> jobs::ManualClock {
    jobs::ManualClock::new(t0())
}

fn clock_at(at: chrono::DateTime<chrono::Utc>) -> jobs::ManualClock {
    jobs::ManualClock::new(at)
}

/// Catches: a job claimed by a worker that then died staying locked forever, running twice, or being taken over
/// before its lease expired.
#[tokio::test]
async fn a_job_held_by_a_killed_worker_is_taken_over_once_its_lease_expires() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.worker.lease_ms = 1000;
    config.worker.lease_renew_ms = 250;
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;
    app.post_event(&event("order.placed", "store-a", json!({})))
        .await;

    // The doomed worker claims the job, then dies without running or acknowledging it.
    let doomed = apalis_core::worker::context::WorkerContext::new("doomed");
    queue::register(&app.pool, &doomed).await.expect("register");
    let before_claim = std::time::Instant::now();
    let mut cursor = queue::claim::Cursor::default();
    let claimed = queue::claim::claim(
        &app.pool,
        doomed.name(),
        10,
        queue::claim::LaneLimits::default(),
        &mut cursor,
    );
    assert_eq!(claimed.await.expect("claim").len(), 1);

    let survivor = app.worker("survivor").await;
    assert_eq!(
        survivor.run_pending_jobs().await.expect("run"),
        0,
        "the job is still locked by the dead worker"
    );
    while survivor.rescue_once().await.expect("rescue") == 0 {
        assert!(before_claim.elapsed() < WAIT, "the lease never expired");
        crate::common::wait::pause().await;
    }
    assert!(
        before_claim.elapsed() >= Duration::from_millis(1000),
        "rescued only after its lease"
    );
    assert_eq!(survivor.run_pending_jobs().await.expect("run"), 1);
    receiver.next(WAIT).await;
    receiver.expect_silence(Duration::from_millis(300)).await;
}

/// Catches: the real worker loop not honouring run_at, and retries lost when the worker process stops.
/// Runs the real loop with time scaled 1/30, so the 1-minute retry waits 2 real seconds.
#[tokio::test]
async fn the_worker_loop_fires_a_scaled_retry_after_its_process_was_stopped_and_started_again() {
    let db = Arc::new(TestDb::create().await);
    let mut config = test_config(&db);
    config.worker.time_scale = 1.0 / 30.0;
    let mut receiver = Receiver::start(&[500]).await;
    let roles = Roles {
        api: true,
        ingest: false,
        worker: true,
    };
    let scaled = || Arc::new(jobs::ScaledClock::new(1.0 / 30.0)) as Arc<dyn jobs::Clock>;
    let mut first =
        TestApp::spawn_with_clock(db.clone(), config.clone(), roles, clock(), scaled()).await;
    first.subscribe("store-a", &receiver.url(), &["*"]).await;
    first
        .post_event(&event("order.placed", "store-a", json!({})))
        .await;
    let attempt_1 = receiver.next(WAIT).await;
    first.stop().await;
    let _second = TestApp::spawn_with_clock(db.clone(), config, roles, clock(), scaled()).await;
    let attempt_2 = receiver.next(WAIT).await;
    assert_eq!(
        attempt_1.header("x-ss3-delivery"),
        attempt_2.header("x-ss3-delivery")
    );
    let gap = attempt_2.at - attempt_1.at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retry came after {gap:?}, before its scaled minute"
    );
    receiver.expect_silence(Duration::from_millis(500)).await;
}
