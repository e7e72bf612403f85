//! Parked jobs: a job due much later stays out of the lanes the claim walks until shortly before it is due.

use std::time::{Duration, Instant};

use apalis_core::worker::context::WorkerContext;
use integration_service::startup::Roles;
use jobs::Job;
use jobs::queue::{self, claim, parked};
use jobs::webhook::DeliverWebhook;
use uuid::Uuid;
use workflows::ids::{DeliveryId, SubscriptionId};

use crate::common::{TestApp, TestDb, test_config};

/// A retry of a delivery in `lane`.
fn retry(lane: Uuid) -> Job {
    Job::WebhookDelivery(DeliverWebhook {
        delivery_id: DeliveryId(Uuid::new_v4()),
        dispatch_seq: 2,
        subscription_id: SubscriptionId(lane),
    })
}

async fn push(app: &TestApp, jobs: Vec<(Job, Duration)>) {
    let mut tx = app.pool.begin().await.expect("begin");
    queue::push(&mut tx, jobs).await.expect("push");
    tx.commit().await.expect("commit");
}

/// Each job's lane key and parked key, by lane.
async fn keys(app: &TestApp, lane: Uuid) -> (Option<String>, Option<String>) {
    sqlx::query_as("SELECT metadata -> 'lane', metadata -> 'parked' FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb ->> 'subscription_id' = $1")
        .bind(lane.to_string())
        .fetch_one(&app.pool)
        .await
        .expect("keys")
}

/// Catches: a far-off retry kept in its lane (every claim would walk past it), a parked job the claim takes, or one
/// never promoted (lost to the claim), promoted too early, or promoted without its lane.
#[tokio::test]
async fn a_job_due_much_later_is_parked_until_a_promotion_puts_it_back_in_its_lane() {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let (soon, later, much_later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    push(
        &app,
        vec![
            (retry(soon), Duration::from_secs(60)),
            (retry(later), Duration::from_secs(300)),
            (retry(much_later), Duration::from_secs(7200)),
        ],
    )
    .await;
    assert_eq!(
        keys(&app, soon).await,
        (Some(soon.to_string()), None),
        "the 1-minute retry is in its lane"
    );
    assert_eq!(
        keys(&app, later).await,
        (None, Some(later.to_string())),
        "the 5-minute retry is parked"
    );
    assert_eq!(
        parked::promote(&app.pool).await.expect("promote"),
        0,
        "nothing is due within a minute yet"
    );

    // Time passes (as if no worker had promoted anything meanwhile): the first two are due.
    sqlx::query("UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE convert_from(job, 'UTF8')::jsonb ->> 'subscription_id' <> $1")
        .bind(much_later.to_string())
        .execute(&app.pool)
        .await
        .expect("make due");
    let worker = WorkerContext::new("parked-test");
    queue::register(&app.pool, &worker).await.expect("register");
    let limits = app.app.config().lanes.limits();
    let mut cursor = claim::Cursor::default();
    let first = claim::claim(&app.pool, worker.name(), 10, limits, &mut cursor)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "only the job in its lane is claimable");
    assert_eq!(Job::decode(&first[0].payload).expect("job").lane(), soon);

    assert_eq!(
        parked::promote(&app.pool).await.expect("promote"),
        1,
        "the overdue parked job, not the 2-hour one"
    );
    assert_eq!(
        keys(&app, later).await,
        (Some(later.to_string()), None),
        "back in its lane, as pushed"
    );
    assert_eq!(
        keys(&app, much_later).await,
        (None, Some(much_later.to_string()))
    );
    let second = claim::claim(&app.pool, worker.name(), 10, limits, &mut cursor)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(Job::decode(&second[0].payload).expect("job").lane(), later);
}

/// Catches: a worker that never promotes parked jobs (a retry would wait forever).
#[tokio::test]
async fn a_running_worker_promotes_parked_jobs_due_within_a_minute() {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    let lane = Uuid::new_v4();
    push(&app, vec![(retry(lane), Duration::from_secs(300))]).await;
    assert_eq!(keys(&app, lane).await.1, Some(lane.to_string()));
    // Due in 30 s: within the promotion window, not yet due (the worker must not claim it).
    sqlx::query("UPDATE apalis.jobs SET run_at = now() + interval '30 seconds'")
        .execute(&app.pool)
        .await
        .expect("due soon");
    let deadline = Instant::now() + parked::PROMOTE_EVERY * 3;
    while keys(&app, lane).await.0.is_none() {
        assert!(
            Instant::now() < deadline,
            "not promoted within three promotion periods"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys(&app, lane).await, (Some(lane.to_string()), None));
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE status = 'Pending'")
            .await,
        1,
        "promoted, not claimed before it is due"
    );
}

/// Catches: wrong figures from the depth `/metrics` reports: a due count that misses due jobs or counts scheduled
/// ones, a scheduled count that is not exact while few jobs wait, or an estimate far (> 10 %) from the truth above
/// 10,000. What a scrape costs is measured in docs/benchmarks.md, not asserted here.
#[tokio::test]
async fn the_queue_depth_is_exact_while_small_and_estimated_when_many_retries_wait() {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let lane = Uuid::new_v4();
    let mut jobs: Vec<(Job, Duration)> = (0..3).map(|_| (retry(lane), Duration::ZERO)).collect();
    jobs.extend((0..5).map(|_| (retry(lane), Duration::from_secs(3600))));
    push(&app, jobs).await;
    assert_eq!(queue::depth(&app.pool).await.expect("depth"), (3, 5));

    let many = 12_000;
    push(
        &app,
        (0..many)
            .map(|i| (retry(lane), Duration::from_secs(3600 + i)))
            .collect(),
    )
    .await;
    sqlx::query("ANALYZE apalis.jobs")
        .execute(&app.pool)
        .await
        .expect("analyze");
    let (due, scheduled) = queue::depth(&app.pool).await.expect("depth");
    assert_eq!(due, 3);
    let exact = i64::try_from(many).expect("count") + 5;
    assert!(
        (scheduled - exact).abs() <= exact / 10,
        "{scheduled} scheduled, {exact} waiting"
    );
}
