//! Waking workers: one NOTIFY per statement that queues due jobs, none from an ingest transaction (it announces
//! after its commit), and a worker woken by either long before its idle backstop.

use std::time::Duration;

use integration_service::startup::Roles;
use jobs::Job;
use jobs::queue::{self, announce};
use jobs::webhook::DeliverWebhook;
use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::common::{Receiver, TestApp, TestDb, event, test_config};

fn job() -> Job {
    Job::WebhookDelivery(DeliverWebhook {
        delivery_id: Uuid::new_v4().into(),
        dispatch_seq: 0,
        subscription_id: Uuid::new_v4().into(),
    })
}

/// Queue `n` jobs due after `delay` in one transaction, marked quiet or not.
async fn push(app: &TestApp, n: usize, delay: Duration, quiet: bool) {
    let mut tx = if quiet {
        announce::begin_quiet(&app.pool).await
    } else {
        app.pool.begin().await
    }
    .expect("begin");
    queue::push(&mut tx, (0..n).map(|_| (job(), delay)).collect())
        .await
        .expect("push");
    tx.commit().await.expect("commit");
}

/// The payloads that reached `listener` on the workers' channel so far: it notifies a marker and collects what
/// arrives before it (notifications arrive in commit order, so whatever earlier commits sent has arrived by then).
async fn received_so_far(app: &TestApp, listener: &mut PgListener) -> Vec<String> {
    sqlx::query("SELECT pg_notify($1, 'marker')")
        .bind(announce::CHANNEL)
        .execute(&app.pool)
        .await
        .expect("marker");
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("the marker arrives")
            .expect("notification");
        if n.payload() == "marker" {
            return got;
        }
        got.push(n.payload().to_owned());
    }
}

/// Catches: a NOTIFY per job row (apalis' trigger left on), a quiet transaction notifying anyway (every ingest commit
/// would serialise on Postgres' notify lock again), notifying for jobs scheduled later, or a payload the workers'
/// listener does not recognise.
#[tokio::test]
async fn one_notification_per_statement_of_due_jobs_and_none_from_a_quiet_transaction() {
    let app = TestApp::spawn().await;
    let mut listener = PgListener::connect_with(&app.pool).await.expect("listener");
    listener.listen(announce::CHANNEL).await.expect("listen");

    push(&app, 3, Duration::ZERO, false).await;
    push(&app, 3, Duration::ZERO, true).await;
    push(&app, 2, Duration::from_secs(3600), false).await;
    let got = received_so_far(&app, &mut listener).await;
    assert_eq!(got.len(), 1, "only the first statement notifies: {got:?}");
    let payload: Value = serde_json::from_str(&got[0]).expect("json");
    assert_eq!(payload, json!({"job_type": jobs::job::QUEUE}));
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs").await,
        8,
        "every job was queued"
    );
}

/// Subscribe a receiver to each of `stores`, then post one event to each, each once the one before is delivered and
/// its flush committed: by then the worker has looked again, found nothing and gone to sleep (for two minutes in
/// these tests), so only a wake-up or a hand-off brings it back in time.
pub(crate) async fn deliver_one_at_a_time(app: &TestApp, stores: &[&str]) {
    let mut receiver = Receiver::start(&[]).await;
    for store in stores {
        app.subscribe(store, &receiver.url(), &["*"]).await;
    }
    for (n, store) in stores.iter().enumerate() {
        let id = app
            .first_delivery(&event("order.placed", store, json!({ "n": n })))
            .await;
        let got = receiver.next(Duration::from_secs(20)).await;
        assert_eq!(got.header("x-ss3-delivery"), id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while app.delivery(store, &id).await.status != "DELIVERED" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivery {n} never recorded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Catches: an ingest commit that neither notifies nor announces (its jobs would wait for the worker's backstop),
/// announcing before the commit, or a worker that ignores the announcement.
#[tokio::test]
async fn an_http_ingest_wakes_a_sleeping_worker_long_before_its_backstop() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.worker.idle_poll_ms = 120_000;
    // Every job is claimed, as in a process whose worker is busy or runs elsewhere (`handoff` has its own tests).
    config.worker.handoff = false;
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    let mut listener = PgListener::connect_with(&app.pool).await.expect("listener");
    listener.listen(announce::CHANNEL).await.expect("listen");
    deliver_one_at_a_time(&app, &["s-1", "s-2", "s-3"]).await;
    let announced = received_so_far(&app, &mut listener).await;
    assert!(!announced.is_empty(), "the ingest commits were announced");
    assert!(
        announced.iter().all(|p| !p.contains("\"id\"")),
        "no per-job notification: {announced:?}"
    );
}
