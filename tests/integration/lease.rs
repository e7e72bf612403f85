//! Leases on claimed jobs: a job whose worker lives but no longer works on it (the claim's reply was lost, the
//! handler panicked, the result could not be written) runs again within a bounded time, and never counts twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_service::startup::Roles;
use jobs::worker::Step;
use serde_json::json;
use tokio::sync::Notify;

use crate::common::faults::ScriptedFaults;
use crate::common::{Receiver, TestApp, TestDb, event, test_config};

const WAIT: Duration = Duration::from_secs(20);

const API_AND_WORKER: Roles = Roles {
    api: true,
    ingest: false,
    worker: true,
};

/// A test config with a short lease (1 s, renewed every 250 ms, rescued every 250 ms).
fn short_lease(db: &TestDb) -> integration_service::config::Config {
    let mut config = test_config(db);
    config.worker.lease_ms = 1000;
    config.worker.lease_renew_ms = 250;
    config.worker.lease_rescue_ms = 250;
    config
}

/// Wait until `sql` (one bigint) answers `want`; fail after `WAIT`.
async fn until_count(app: &TestApp, sql: &'static str, want: i64) {
    let deadline = Instant::now() + WAIT;
    let mut got = app.count(sql).await;
    while got != want && Instant::now() < deadline {
        crate::common::wait::pause().await;
        got = app.count(sql).await;
    }
    assert_eq!(got, want, "{sql}");
}

/// Catches issue 15: a claim that committed while the worker saw an error left its jobs locked by a live,
/// heartbeating worker forever (orphan recovery only looked at dead workers), so the delivery stayed PENDING.
#[tokio::test]
async fn a_job_whose_claim_reply_was_lost_runs_again_within_the_lease_while_its_worker_lives() {
    let db = Arc::new(TestDb::create().await);
    let faults = ScriptedFaults::new();
    faults.fail_once(Step::Claimed);
    let app =
        TestApp::spawn_with_faults(db.clone(), short_lease(&db), API_AND_WORKER, faults.clone())
            .await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;

    let posted = Instant::now();
    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    assert_eq!(faults.next_fired(WAIT).await, Some(Step::Claimed));
    let got = receiver.next(WAIT).await;
    assert_eq!(got.header("x-ss3-delivery"), id);
    assert!(
        got.at - posted >= Duration::from_millis(1000),
        "sent only after the lost claim's lease expired"
    );
    until_count(
        &app,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND attempt_number = 1",
        1,
    )
    .await;
    receiver.expect_silence(Duration::from_millis(300)).await;
}

/// Catches: a panic in a job handler leaving its job claimed with nobody running it. With a lease far longer than
/// the test, only the worker catching the panic (and acknowledging the job as failed) can run it again.
#[tokio::test]
async fn a_panicking_job_handler_frees_its_slot_and_its_job_runs_again_at_once() {
    let db = Arc::new(TestDb::create().await);
    let mut config = test_config(&db);
    config.worker.lease_ms = 600_000;
    config.worker.lease_renew_ms = 1000;
    config.worker.concurrency = 1;
    config.worker.batch_size = 1;
    let faults = ScriptedFaults::new();
    faults.panic_once(Step::Ran);
    let app = TestApp::spawn_with_faults(db, config, API_AND_WORKER, faults.clone()).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;

    for n in 0..2 {
        app.post_event(&event("order.placed", "store-a", json!({ "n": n })))
            .await;
    }
    assert_eq!(faults.next_fired(WAIT).await, Some(Step::Ran));
    until_count(
        &app,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'",
        2,
    )
    .await;
    // The panicked run's attempt was never written: each delivery has exactly one recorded attempt.
    until_count(&app, "SELECT count(*) FROM webhook_delivery_attempts", 2).await;
    let mut per_id = std::collections::HashMap::<String, usize>::new();
    for _ in 0..3 {
        let got = receiver.next(WAIT).await;
        *per_id
            .entry(got.header("x-ss3-delivery").to_owned())
            .or_default() += 1;
    }
    let mut counts: Vec<usize> = per_id.into_values().collect();
    counts.sort();
    assert_eq!(
        counts,
        [1, 2],
        "the panicked job was sent again, with the same delivery id"
    );
    receiver.expect_silence(Duration::from_millis(300)).await;
}

/// Catches: a flush whose commit reply was lost being given up (its jobs never acknowledged) or applied twice
/// (a second attempt, a second published event, a second job).
#[tokio::test]
async fn a_flush_whose_commit_reply_was_lost_is_written_again_without_counting_anything_twice() {
    let db = Arc::new(TestDb::create().await);
    let faults = ScriptedFaults::new();
    faults.fail_once(Step::Committed);
    let app =
        TestApp::spawn_with_faults(db.clone(), short_lease(&db), API_AND_WORKER, faults.clone())
            .await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;

    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;
    assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);
    assert_eq!(faults.next_fired(WAIT).await, Some(Step::Committed));
    // Acknowledged: the job is deleted (worker.job_retention_secs = 0), and no second one was queued.
    until_count(&app, "SELECT count(*) FROM apalis.jobs", 0).await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_delivery_attempts")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'webhook.delivered'"
        )
        .await,
        1
    );
    receiver.expect_silence(Duration::from_millis(1500)).await;
}

/// Catches: a job rescued from a worker that was still running it (its renewals failed) counting a second
/// attempt, publishing a second event or queuing a second job when the first worker finally writes its result.
#[tokio::test]
async fn a_rescued_copy_of_a_job_sends_again_with_the_same_id_but_counts_one_attempt() {
    let db = Arc::new(TestDb::create().await);
    let mut config = test_config(&db);
    config.worker.lease_ms = 300;
    config.worker.lease_renew_ms = 100;
    let faults = ScriptedFaults::new();
    let release = Arc::new(Notify::new());
    faults.hold_once(Step::Ran, release.clone());
    let app = TestApp::spawn_with_faults(db, config, Roles::API, faults.clone()).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-a", &receiver.url(), &["*"]).await;
    let id = app
        .first_delivery(&event("order.placed", "store-a", json!({})))
        .await;

    // Worker A sends, then stalls before writing; driven by hand, it renews no lease.
    let a = app.worker("a").await;
    let first = tokio::spawn(async move { a.run_once().await });
    assert_eq!(faults.next_fired(WAIT).await, Some(Step::Ran));
    let b = app.worker("b").await;
    let deadline = Instant::now() + WAIT;
    while b.rescue_once().await.expect("rescue") == 0 {
        assert!(Instant::now() < deadline, "the lease never expired");
        crate::common::wait::pause().await;
    }
    assert_eq!(b.run_pending_jobs().await.expect("run"), 1);
    release.notify_one();
    assert_eq!(first.await.expect("join").expect("run").jobs, 1);

    for _ in 0..2 {
        assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);
    }
    let counts = [
        "SELECT count(*) FROM webhook_delivery_attempts",
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND attempt_number = 1",
        "SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'webhook.delivered'",
    ];
    for sql in counts {
        assert_eq!(app.count(sql).await, 1, "{sql}");
    }
    // B's acknowledgement deleted the job; A's late one found nothing to write, and queued nothing.
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs").await, 0);
    receiver.expect_silence(Duration::from_millis(300)).await;
}

/// Catches: an acknowledgement that leaves finished jobs behind by default (each one a second write into every index
/// of `apalis.jobs`, and a third when the sweep deletes it), or deletes them when the operator keeps them.
#[tokio::test]
async fn a_finished_job_is_deleted_when_acknowledged_unless_finished_jobs_are_kept() {
    for (keep_secs, finished_left) in [(0, 0), (60, 1)] {
        let db = TestDb::create().await;
        let mut config = test_config(&db);
        config.worker.job_retention_secs = keep_secs;
        let app = TestApp::spawn_with(db, config, Roles::API).await;
        let mut receiver = Receiver::start(&[]).await;
        app.subscribe("store-a", &receiver.url(), &["*"]).await;
        let id = app
            .first_delivery(&event("order.placed", "store-a", json!({})))
            .await;
        let worker = app.worker("a").await;
        assert_eq!(worker.run_pending_jobs().await.expect("run"), 1);
        assert_eq!(receiver.next(WAIT).await.header("x-ss3-delivery"), id);
        assert_eq!(
            app.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")
                .await,
            1
        );
        assert_eq!(
            app.count("SELECT count(*) FROM apalis.jobs").await,
            finished_left,
            "job_retention_secs = {keep_secs}"
        );
        assert_eq!(
            app.count(
                "SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND last_result = '{\"Ok\": null}'"
            )
            .await,
            finished_left
        );
    }
}
