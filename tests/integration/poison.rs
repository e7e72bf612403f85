//! One bad message must never stop ingest (issue 9, items 1 and 7): messages the parser or Postgres refuses are
//! quarantined with their raw bytes and reason, everything else of the batch and of the partition is delivered,
//! and `POST /events` answers the same input with problem JSON, never a 500.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use integration_service::config::Config;
use integration_service::db::events::Ingested;
use integration_service::ingest::{Incoming, OffsetUpdate};
use integration_service::startup::Roles;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use workflows::EventEnvelope;

use crate::common::kafka::{brokers, create_topics, produce, producer};
use crate::common::{Receiver, TestApp, TestDb, event, problem, test_config};

const WAIT: Duration = Duration::from_secs(30);

/// A store whose events Postgres refuses with a CHECK constraint (SQLSTATE 23514).
pub(crate) const CHECK_REFUSED: &str = "refused-by-check";
/// A store whose events Postgres refuses with a data exception raised by a trigger (SQLSTATE 22023).
pub(crate) const DATA_REFUSED: &str = "refused-by-trigger";

/// Make Postgres itself refuse two stores' events. The envelope parser now catches every data error we could find
/// (NUL, non-objects), so this test-only schema change is how a message that only Postgres refuses is made,
/// exercising the savepoint replay for real (a constraint violation and a data exception).
pub(crate) async fn make_postgres_refuse_some_stores(pool: &PgPool) {
    for statement in [
        format!(
            "ALTER TABLE ingested_events ADD CONSTRAINT test_refuses_a_store CHECK (store_id <> '{CHECK_REFUSED}')"
        ),
        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'this store is refused by the test' USING ERRCODE = '22023'; END $$"
            .to_owned(),
        format!(
            "CREATE TRIGGER test_refuse BEFORE INSERT ON ingested_events FOR EACH ROW
             WHEN (NEW.store_id = '{DATA_REFUSED}') EXECUTE FUNCTION test_refuse()"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(pool)
            .await
            .expect("install the refusal");
    }
}

fn kafka_config(db: &TestDb, regex: &str) -> Config {
    let mut config = test_config(db);
    config.kafka.brokers = brokers();
    config.kafka.topic_regex = regex.to_owned();
    config.kafka.group_id = format!("g-{}", Uuid::new_v4());
    config.kafka.publish_topics = crate::common::kafka::one_topic(&format!(
        "integration.t{}.webhooks",
        Uuid::new_v4().simple()
    ));
    config.worker.time_scale = 1.0;
    config
}

fn event_ids(received: &[Value]) -> HashSet<String> {
    received
        .iter()
        .map(|b| b["eventId"].as_str().expect("eventId").to_owned())
        .collect()
}

/// Catches: a message Postgres refuses (`\u0000` in `data`, a constraint) failing its batch forever, so that
/// the consumer leaves the group and the partition is never ingested again; an array accepted as an event.
/// On the old code this times out waiting for the deliveries.
#[tokio::test]
async fn poison_messages_in_a_batch_are_quarantined_and_the_rest_and_later_messages_are_delivered()
{
    let run = Uuid::new_v4().simple().to_string();
    let topic = format!("ss3.t{run}.orders");
    create_topics(std::slice::from_ref(&topic)).await;
    let db = TestDb::create().await;
    let config = kafka_config(&db, &format!("^ss3\\.t{run}\\..+"));
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    make_postgres_refuse_some_stores(&app.pool).await;
    let mut receiver = Receiver::start(&[]).await;
    for store in ["store-p", CHECK_REFUSED, DATA_REFUSED] {
        app.subscribe(store, &receiver.url(), &["*"]).await;
    }

    let good: Vec<Value> = (0..5)
        .map(|n| event("order.placed", "store-p", json!({"n": n})))
        .collect();
    let nul = format!(
        r#"{{"eventId":"{}","eventType":"order.placed","storeId":"store-p","data":{{"note":"a\u0000b"}}}}"#,
        Uuid::new_v4()
    );
    let array = format!(
        r#"["{}","order.placed","store-p",null,{{}},null]"#,
        Uuid::new_v4()
    );
    let by_check = event("order.placed", CHECK_REFUSED, json!({})).to_string();
    let by_trigger = event("order.placed", DATA_REFUSED, json!({})).to_string();
    // One batch (produced back to back): good, poison, good, poison, poison, good, poison.
    let p = producer();
    let mut poison = Vec::new();
    for (payload, reason) in [
        (good[0].to_string(), None),
        (nul, Some("nul_character")),
        (good[1].to_string(), None),
        (array, Some("event_not_object")),
        (by_check, Some("constraint_violation")),
        (good[2].to_string(), None),
        (by_trigger, Some("data_exception")),
    ] {
        let offset = produce(&p, &topic, "k", payload.as_bytes()).await;
        if let Some(reason) = reason {
            poison.push((offset, reason, payload.into_bytes()));
        }
    }
    let first: Vec<Value> = receive(&mut receiver, 3).await;
    assert_eq!(event_ids(&first), event_ids(&good[..3]));

    // The consumer keeps going on the same partition.
    let mut last = 0;
    for later in &good[3..] {
        last = produce(&p, &topic, "k", later.to_string().as_bytes()).await;
    }
    let second = receive(&mut receiver, 2).await;
    assert_eq!(event_ids(&second), event_ids(&good[3..]));

    let rows: Vec<(i64, String, Vec<u8>, String)> = sqlx::query_as(
        "SELECT kafka_offset, reason_code, payload, reason FROM quarantined_messages ORDER BY kafka_offset",
    )
    .fetch_all(&app.pool)
    .await
    .expect("quarantine");
    let got: Vec<(i64, &str, &[u8])> = rows
        .iter()
        .map(|(o, code, payload, _)| (*o, code.as_str(), payload.as_slice()))
        .collect();
    let want: Vec<(i64, &str, &[u8])> = poison
        .iter()
        .map(|(o, code, payload)| (*o, *code, payload.as_slice()))
        .collect();
    assert_eq!(got, want, "each poison message, raw bytes and reason");
    assert!(rows[2].3.contains("SQLSTATE 23514"), "{}", rows[2].3);
    assert_eq!(
        app.count("SELECT count(*) FROM ingested_events").await,
        5,
        "nothing of the refused messages stays behind"
    );
    let next: i64 = sqlx::query_scalar("SELECT next_offset FROM kafka_offsets WHERE topic = $1")
        .bind(&topic)
        .fetch_one(&app.pool)
        .await
        .expect("stored offset");
    assert_eq!(next, last + 1);
}

async fn receive(receiver: &mut Receiver, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let got = receiver.next(WAIT).await;
        out.push(serde_json::from_slice(&got.body).expect("json"));
    }
    out
}

fn incoming<'a>(offset: i64, payload: &'a [u8]) -> Incoming<'a> {
    Incoming {
        topic: "ss3.savepoints",
        partition: 3,
        offset,
        key: None,
        payload: Some(payload),
        parsed: EventEnvelope::parse(payload, 1 << 20, chrono::Utc::now()),
        trace_parent: None,
    }
}

/// Catches: one refused message rolling back (or quarantining) its neighbours, or the offsets not moving past it.
#[tokio::test]
async fn a_batch_replayed_with_savepoints_commits_the_good_events_quarantines_the_refused_and_stores_offsets()
 {
    let app = TestApp::spawn().await;
    make_postgres_refuse_some_stores(&app.pool).await;
    let bodies: Vec<Vec<u8>> = [
        event("order.placed", "store-s", json!({"n": 1})),
        event("order.placed", CHECK_REFUSED, json!({})),
        event("order.placed", "store-s", json!({"n": 2})),
        event("order.placed", DATA_REFUSED, json!({})),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .chain([b"[]".to_vec()])
    .collect();
    let batch: Vec<Incoming<'_>> = (0..)
        .zip(&bodies)
        .map(|(i, b)| incoming(100 + i, b))
        .collect();
    let update = OffsetUpdate {
        group: "g-savepoints".into(),
        topics: vec!["ss3.savepoints".into()],
        partitions: vec![3],
        next: vec![105],
    };
    let ingestor = integration_service::ingest::Ingestor::new(
        app.pool.clone(),
        Arc::clone(&app.app.state().metrics),
        None,
    );
    let ingested = ingestor
        .ingest_batch(&batch, Some(&update))
        .await
        .expect("the batch is written");
    assert_eq!(ingested.len(), 2);
    assert!(ingested.iter().all(|i| matches!(i, Ingested::New { .. })));
    let quarantined: Vec<(i64, String)> = sqlx::query_as(
        "SELECT kafka_offset, reason_code FROM quarantined_messages ORDER BY kafka_offset",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(
        quarantined,
        vec![
            (101, "constraint_violation".to_owned()),
            (103, "data_exception".to_owned()),
            (104, "event_not_object".to_owned())
        ]
    );
    assert_eq!(app.count("SELECT count(*) FROM ingested_events").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM kafka_offsets WHERE next_offset = 105")
            .await,
        1
    );
    let metrics = &app.app.state().metrics;
    assert_eq!(
        (
            metrics.events_ingested.get(),
            metrics.messages_quarantined.get()
        ),
        (2, 3)
    );
}

/// Catches: an infrastructure failure being taken for the data's fault (quarantining good messages).
#[tokio::test]
async fn an_infrastructure_failure_quarantines_nothing_and_is_reported_for_a_retry() {
    let app = TestApp::spawn().await;
    let body = event("order.placed", "store-s", json!({})).to_string();
    let batch = [incoming(7, body.as_bytes())];
    let ingestor = integration_service::ingest::Ingestor::new(
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
            .expect("lazy pool"),
        Arc::clone(&app.app.state().metrics),
        None,
    );
    let err = ingestor
        .ingest_batch(&batch, None)
        .await
        .expect_err("no database there");
    assert!(
        matches!(
            err,
            integration_service::ingest::BatchError::Infrastructure(_)
        ),
        "{err:?}"
    );
    assert_eq!(app.app.state().metrics.messages_quarantined.get(), 0);
}

/// Catches: NUL in data and Postgres data errors answering 500, and an array body being accepted as an event.
#[tokio::test]
async fn post_events_answers_nul_arrays_and_data_postgres_refuses_with_problem_json() {
    let app = TestApp::spawn().await;
    make_postgres_refuse_some_stores(&app.pool).await;
    let id = Uuid::new_v4();
    let cases = [
        (
            json!({"eventId": id, "eventType": "order.placed", "storeId": "s", "data": {"note": "a\u{0}b"}}),
            "nul_character",
        ),
        (
            json!([id, "order.placed", "s", null, {}, null]),
            "event_not_object",
        ),
        (
            event("order.placed", CHECK_REFUSED, json!({})),
            "invalid_value",
        ),
        (
            event("order.placed", DATA_REFUSED, json!({})),
            "data_exception",
        ),
    ];
    for (body, code) in cases {
        let (status, p) = problem(app.post_event(&body).await).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (422, Some(code)),
            "for {body}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM ingested_events").await, 0);
}
