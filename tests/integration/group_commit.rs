//! `POST /events` in shared transactions: requests that wait while a writer is busy are written together in one
//! transaction, and one that Postgres refuses still fails alone, with its own problem.

use std::time::{Duration, Instant};

use futures::future::join_all;
use integration_service::startup::Roles;
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};

use crate::common::wait::pause;
use crate::common::{TestApp, TestDb, event, problem, test_config};
use crate::poison::{CHECK_REFUSED, DATA_REFUSED, make_postgres_refuse_some_stores};

const WAIT: Duration = Duration::from_secs(20);

/// An API with one `POST /events` writer.
async fn one_writer() -> TestApp {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.http.ingest_writers = 1;
    TestApp::spawn_with(db, config, Roles::API).await
}

/// Block every insert into `ingested_events` until the returned transaction ends.
async fn block_ingest(app: &TestApp) -> Transaction<'static, Postgres> {
    let mut lock = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE ingested_events IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    lock
}

/// Wait until `done` holds; fail after `WAIT`.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        pause().await;
    }
}

/// Post `first` and, once the writer is stuck on it, `rest`; unblock when all of `rest` wait for the writer.
/// Returns each answer's status and body, `first`'s first.
async fn post_behind_a_busy_writer(
    app: &TestApp,
    lock: Transaction<'static, Postgres>,
    first: &Value,
    rest: &[Value],
) -> Vec<(u16, Value)> {
    let read = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let behind = async {
        until("the writer waits for the lock", async || {
            app.count(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
                == 1
        })
        .await;
        let release = async {
            until("every later request waits for the writer", async || {
                app.app.state().ingestor.waiting() == rest.len()
            })
            .await;
            lock.commit().await.expect("unlock");
        };
        let (answers, ()) = tokio::join!(join_all(rest.iter().map(|e| app.post_event(e))), release);
        answers
    };
    let (first, rest) = tokio::join!(app.post_event(first), behind);
    let mut all = vec![read(first).await];
    for r in rest {
        all.push(read(r).await);
    }
    all
}

/// Catches: concurrent requests each paying a transaction of their own (no sharing), or a shared transaction
/// answering for the wrong event.
#[tokio::test]
async fn requests_waiting_for_a_busy_writer_share_one_transaction() {
    let app = one_writer().await;
    let lock = block_ingest(&app).await;
    let rest: Vec<Value> = (0..10)
        .map(|i| event("order.placed", "store-a", json!({"n": i})))
        .collect();
    let first = event("order.placed", "store-a", json!({"n": "first"}));
    let answers = post_behind_a_busy_writer(&app, lock, &first, &rest).await;
    for ((status, body), sent) in answers.iter().zip(std::iter::once(&first).chain(&rest)) {
        assert_eq!(*status, 202, "{body}");
        assert_eq!(body["eventId"], sent["eventId"]);
        assert_eq!(body["accepted"], true);
    }
    assert_eq!(app.count("SELECT count(*) FROM ingested_events").await, 11);
    // Rows written by one transaction carry its id: the first event's, and one shared by the ten behind it.
    assert_eq!(
        app.count("SELECT count(DISTINCT xmin::text) FROM ingested_events")
            .await,
        2
    );
}

/// Catches: one event Postgres refuses failing every request it shared a transaction with, or being answered
/// with another's result.
#[tokio::test]
async fn an_event_postgres_refuses_fails_alone_in_a_shared_transaction() {
    let app = one_writer().await;
    make_postgres_refuse_some_stores(&app.pool).await;
    let lock = block_ingest(&app).await;
    let mut rest: Vec<Value> = (0..4)
        .map(|i| event("order.placed", "store-a", json!({"n": i})))
        .collect();
    rest.insert(1, event("order.placed", CHECK_REFUSED, json!({})));
    rest.push(event("order.placed", DATA_REFUSED, json!({})));
    let first = event("order.placed", "store-a", json!({"n": "first"}));
    let answers = post_behind_a_busy_writer(&app, lock, &first, &rest).await;
    let codes: Vec<(u16, Option<&str>)> = answers
        .iter()
        .map(|(status, body)| (*status, body["code"].as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (202, None),
            (202, None),
            (422, Some("invalid_value")),
            (202, None),
            (202, None),
            (202, None),
            (422, Some("data_exception")),
        ]
    );
    assert_eq!(app.count("SELECT count(*) FROM ingested_events").await, 5);
    // The refused ones answer problem JSON, as alone.
    let (status, p) = problem(app.post_event(&rest[1]).await).await;
    assert_eq!((status, p["code"].as_str()), (422, Some("invalid_value")));
}
