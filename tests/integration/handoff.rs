//! The hand-off: jobs the ingest queues are written claimed by this process's worker, within the claim's rules, and
//! run from memory; the rest wait for a claim.

use std::sync::Arc;
use std::time::Duration;

use apalis_core::worker::context::WorkerContext;
use integration_service::startup::Roles;
use jobs::Job;
use jobs::queue::{self, Taker, announce, claim::LaneLimits, push::push_taking};
use jobs::webhook::DeliverWebhook;
use jobs::{ManualClock, ScaledClock};
use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use uuid::Uuid;
use workflows::ids::{DeliveryId, SubscriptionId};
use workflows::signing::verify_ss3;

use crate::common::client::{IngestResult, expect_json};
use crate::common::{Receiver, TestApp, TestDb, event, t0, test_config};
use crate::wakeups::deliver_one_at_a_time;

const WAIT: Duration = Duration::from_secs(10);

/// A first attempt of a delivery in `lane`.
fn first_attempt(lane: Uuid) -> Job {
    Job::WebhookDelivery(DeliverWebhook {
        delivery_id: DeliveryId(Uuid::now_v7()),
        dispatch_seq: 1,
        subscription_id: SubscriptionId(lane),
    })
}

/// Push `jobs` in one transaction, `taker` taking what it may; returns how many it took per lane of `lanes`.
async fn push(
    app: &TestApp,
    jobs: Vec<(Job, Duration)>,
    taker: Taker<'_>,
    lanes: &[Uuid],
) -> Vec<usize> {
    let mut tx = app.pool.begin().await.expect("begin");
    let taken = push_taking(&mut tx, jobs, Some(taker)).await.expect("push");
    tx.commit().await.expect("commit");
    let taken: Vec<Uuid> = taken
        .iter()
        .map(|t| Job::decode(&t.payload).expect("job").lane())
        .collect();
    lanes
        .iter()
        .map(|l| taken.iter().filter(|t| *t == l).count())
        .collect()
}

/// Catches: a hand-off that takes more than a lane's room (its limit less the jobs in flight, by any worker), jumps
/// ahead of a due job already waiting in its lane, takes from a lane another worker is claiming right now, takes a
/// job due later, takes more than the worker reserved slots for, or writes a taken job other than claimed.
#[tokio::test]
async fn the_jobs_taken_as_they_are_queued_follow_the_claims_rules() {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let worker = WorkerContext::new("handoff-test");
    queue::register(&app.pool, &worker).await.expect("register");
    let limits = LaneLimits {
        default_in_flight: 2,
        ..LaneLimits::default()
    };
    let taker = |most| Taker {
        worker: "handoff-test",
        most,
        limits,
    };
    let [empty, waiting, full, busy, later, bounded] = std::array::from_fn(|_| Uuid::new_v4());

    // `waiting` has a due job no worker took; `full` has two jobs in flight (its room of 2).
    queue::push(
        &mut app.pool.acquire().await.expect("conn"),
        vec![(first_attempt(waiting), Duration::ZERO)],
    )
    .await
    .expect("push");
    let now = Duration::ZERO;
    let full_jobs = vec![(first_attempt(full), now), (first_attempt(full), now)];
    assert_eq!(push(&app, full_jobs, taker(10), &[full]).await, [2]);
    // Another worker is claiming `busy` right now (it holds the claim's lock of that lane).
    let mut claiming = app.pool.acquire().await.expect("conn");
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('ss3-lane:' || $1, 0))")
        .bind(busy.to_string())
        .execute(&mut *claiming)
        .await
        .expect("lock");

    let jobs = vec![
        (first_attempt(empty), now),
        (first_attempt(empty), now),
        (first_attempt(empty), now),
        (first_attempt(waiting), now),
        (first_attempt(full), now),
        (first_attempt(busy), now),
        (first_attempt(later), Duration::from_secs(30)),
    ];
    let lanes = [empty, waiting, full, busy, later];
    assert_eq!(
        push(&app, jobs, taker(10), &lanes).await,
        [2, 0, 0, 0, 0],
        "two in the empty lane (its room), none elsewhere"
    );
    let three = (0..3).map(|_| (first_attempt(bounded), now)).collect();
    assert_eq!(
        push(&app, three, taker(1), &[bounded]).await,
        [1],
        "no more than the slots reserved"
    );

    let (claimed, claimed_by_us, waiting_unclaimed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'Queued'),
                count(*) FILTER (WHERE status = 'Queued' AND lock_by = 'handoff-test' AND lock_at IS NOT NULL),
                count(*) FILTER (WHERE status = 'Pending' AND lock_by IS NULL AND lock_at IS NULL)
         FROM apalis.jobs",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(
        (claimed, claimed_by_us),
        (5, 5),
        "taken jobs are written claimed by the taker"
    );
    assert_eq!(waiting_unclaimed, 8, "the rest wait for a claim, as pushed");
}

/// Catches: ingest that still wakes workers for jobs it handed off (a NOTIFY and a claim per commit, the cost the
/// hand-off saves), a handed-off job the worker never runs (the worker sleeps two minutes between looks here), or
/// one run but never acknowledged.
#[tokio::test]
async fn events_posted_to_a_process_with_a_worker_are_handed_to_it_without_a_wake_up() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.worker.idle_poll_ms = 120_000;
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    let mut listener = PgListener::connect_with(&app.pool).await.expect("listener");
    listener.listen(announce::CHANNEL).await.expect("listen");
    deliver_one_at_a_time(&app, &["h-1", "h-2", "h-3"]).await;
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs").await,
        0,
        "the handed-off jobs were acknowledged"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND attempt_number = 1")
            .await,
        3
    );
    assert_eq!(app.app.state().metrics.jobs_handed_off.get(), 3);
    tokio::time::timeout(Duration::from_millis(300), listener.recv())
        .await
        .expect_err("nothing was announced: no worker had to be woken");
}

/// Catches: a handed-off first attempt sending other bytes, headers or keys than the worker sends when it loads the
/// delivery (a retry). The first attempt runs from the fan-out's answer and is never loaded; its body must be the
/// stored one (Postgres' `jsonb` order of keys), not the posted one.
#[tokio::test]
async fn a_handed_off_attempt_sends_what_a_loaded_retry_of_it_sends() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.worker.time_scale = 0.0001;
    // Retries on the scaled clock: the first one is due 6 ms after the failure.
    let app = TestApp::spawn_with_clock(
        Arc::new(db),
        config,
        Roles::ALL,
        ManualClock::new(t0()),
        Arc::new(ScaledClock::new(0.0001)),
    )
    .await;
    let mut receiver = Receiver::start(&[500]).await;
    let (_, secret) = app
        .subscribe("store-h", &receiver.url(), &["order.placed"])
        .await;
    let data = json!({"zeta": 1, "a": {"y": [1.5, "x"], "b": null}, "mm": "é"});
    let response = app
        .post_event(&event("order.placed", "store-h", data.clone()))
        .await;
    let ingested: IngestResult = expect_json(response, 202).await;
    let id = ingested
        .delivery_ids
        .first()
        .expect("one delivery")
        .to_string();

    let first = receiver.next(WAIT).await;
    let retry = receiver.next(WAIT).await;
    assert_eq!(
        app.app.state().metrics.jobs_handed_off.get(),
        1,
        "the first attempt was handed off"
    );
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        String::from_utf8_lossy(&retry.body),
        "the same bytes"
    );
    let sent: Value = serde_json::from_slice(&first.body).expect("JSON body");
    assert_eq!(sent["data"], data);
    for header in [
        "content-type",
        "x-ss3-event",
        "x-ss3-delivery",
        "webhook-id",
    ] {
        assert_eq!(first.header(header), retry.header(header), "{header}");
    }
    assert_eq!(first.header("x-ss3-delivery"), id);
    for got in [&first, &retry] {
        assert_eq!(
            verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
            Ok(())
        );
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.delivery("store-h", &id).await.status != "DELIVERED" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry was never recorded"
        );
        crate::common::wait::pause().await;
    }
    assert_eq!(app.delivery("store-h", &id).await.attempts.len(), 2);
}
