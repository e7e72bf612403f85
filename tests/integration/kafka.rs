//! End to end through real Kafka (tansu): the ingest loop, the worker loop and the outbox relay all running.

use std::time::Duration;

use integration_service::config::Config;
use integration_service::startup::Roles;
use serde_json::{Value, json};
use uuid::Uuid;
use workflows::signing::verify_ss3;

use crate::common::kafka::{brokers, create_topics, produce, producer, read};
use crate::common::{Receiver, TestApp, TestDb, event, test_config};

const WAIT: Duration = Duration::from_secs(30);

/// Topics private to one test: consumed by regex, published to a topic outside it.
struct Topics {
    orders: String,
    products: String,
    publish: String,
    regex: String,
}

fn topics() -> Topics {
    let run = Uuid::new_v4().simple().to_string();
    Topics {
        orders: format!("ss3.t{run}.orders"),
        products: format!("ss3.t{run}.products"),
        publish: format!("integration.t{run}.webhooks"),
        regex: format!("^ss3\\.t{run}\\..+"),
    }
}

fn kafka_config(db: &TestDb, topics: &Topics, group: &str) -> Config {
    let mut config = test_config(db);
    config.kafka.brokers = brokers();
    config.kafka.topic_regex = topics.regex.clone();
    config.kafka.group_id = group.to_owned();
    config.kafka.publish_topics = crate::common::kafka::one_topic(&topics.publish);
    config.worker.time_scale = 1.0;
    config
}

async fn spawn(db: TestDb, config: Config) -> TestApp {
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    // The real loops use the real clock.
    app
}

/// Catches: ingest not committing to Postgres, a broken signature, webhook.delivered never reaching Kafka.
#[tokio::test]
async fn an_event_produced_to_kafka_is_delivered_signed_and_webhook_delivered_is_published() {
    let t = topics();
    create_topics(&[t.orders.clone(), t.products.clone(), t.publish.clone()]).await;
    let db = TestDb::create().await;
    let config = kafka_config(&db, &t, &format!("g-{}", Uuid::new_v4()));
    let app = spawn(db, config).await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, secret) = app
        .subscribe("store-k", &receiver.url(), &["order.placed", "product.*"])
        .await;

    let order = event("order.placed", "store-k", json!({"orderId": "k-1"}));
    produce(
        &producer(),
        &t.orders,
        "store-k",
        order.to_string().as_bytes(),
    )
    .await;
    let got = receiver.next(WAIT).await;
    assert_eq!(got.header("x-ss3-event"), "order.placed");
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    let delivery_id = got.header("x-ss3-delivery").to_owned();

    let published = read(&t.publish, 1, WAIT).await;
    assert_eq!(published[0]["eventType"], "webhook.delivered");
    assert_eq!(
        published[0]["data"],
        json!({"deliveryId": delivery_id, "subscriptionId": sub, "storeId": "store-k", "eventType": "order.placed"})
    );
    let delivery = app.delivery("store-k", &delivery_id).await;
    assert_eq!(delivery.status, "DELIVERED");

    // A second topic matched by the same regex.
    let product = event("product.updated", "store-k", json!({"sku": "S"}));
    produce(
        &producer(),
        &t.products,
        "store-k",
        product.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        receiver.next(WAIT).await.header("x-ss3-event"),
        "product.updated"
    );
}

/// Catches: a poison message crashing or blocking the consumer, or being dropped silently.
#[tokio::test]
async fn a_poison_message_is_quarantined_and_the_next_good_message_is_still_delivered() {
    let t = topics();
    create_topics(&[t.orders.clone(), t.publish.clone()]).await;
    let db = TestDb::create().await;
    let config = kafka_config(&db, &t, &format!("g-{}", Uuid::new_v4()));
    let app = spawn(db, config).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-k", &receiver.url(), &["*"]).await;

    let p = producer();
    let poison_offset = produce(&p, &t.orders, "k", b"{not json").await;
    let no_store = json!({"eventId": Uuid::new_v4(), "eventType": "order.placed"});
    produce(&p, &t.orders, "k", no_store.to_string().as_bytes()).await;
    let good = event("order.placed", "store-k", json!({"n": 1}));
    produce(&p, &t.orders, "k", good.to_string().as_bytes()).await;

    let got = receiver.next(WAIT).await;
    let body: Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(body["eventId"], good["eventId"]);
    let rows: Vec<(String, i64, String, Vec<u8>)> =
        sqlx::query_as("SELECT kafka_topic, kafka_offset, reason_code, payload FROM quarantined_messages ORDER BY kafka_offset")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2.as_str()),
        (t.orders.as_str(), poison_offset, "event_not_json")
    );
    assert_eq!(rows[0].3, b"{not json", "the raw bytes are kept");
    assert_eq!(rows[1].2, "event_missing_field");
}

/// Catches: a redelivered message or a consumer replaying old offsets creating duplicate deliveries.
#[tokio::test]
async fn redelivered_messages_and_a_consumer_replaying_old_offsets_create_nothing_new() {
    let t = topics();
    create_topics(&[t.orders.clone(), t.publish.clone()]).await;
    let db = TestDb::create().await;
    let url = db.url.clone();
    let config = kafka_config(&db, &t, &format!("g-{}", Uuid::new_v4()));
    let mut app = spawn(db, config.clone()).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-k", &receiver.url(), &["*"]).await;

    let p = producer();
    let e1 = event("order.placed", "store-k", json!({"n": 1}));
    let e2 = event("order.placed", "store-k", json!({"n": 2}));
    for payload in [&e1, &e1, &e2, &e1] {
        produce(&p, &t.orders, "k", payload.to_string().as_bytes()).await;
    }
    receiver.next(WAIT).await;
    receiver.next(WAIT).await;
    receiver.expect_silence(Duration::from_secs(1)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        2
    );

    // Another consumer group starts from the earliest offset: it re-reads all four messages.
    app.stop().await;
    let mut replay = config;
    replay.kafka.group_id = format!("g-{}", Uuid::new_v4());
    let db2 = TestDb {
        name: format!("unused_{}", Uuid::new_v4().simple()),
        url,
    };
    let second = TestApp::spawn_with(db2, replay, Roles::ALL).await;
    let marker = event("order.placed", "store-k", json!({"n": "marker"}));
    produce(&p, &t.orders, "k", marker.to_string().as_bytes()).await;
    let got = receiver.next(WAIT).await;
    let body: Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(
        body["eventId"], marker["eventId"],
        "only the new event is delivered after the replay"
    );
    receiver.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(
        second
            .count("SELECT count(*) FROM webhook_deliveries")
            .await,
        3
    );
    assert_eq!(
        second.count("SELECT count(*) FROM ingested_events").await,
        3
    );
}

/// Catches: published events all on one topic (the platform's services subscribe to a topic per event type, the
/// store-admin notification service to `webhook.dead_lettered` alone), or the topics not created at start-up.
#[tokio::test]
async fn by_default_each_published_event_type_has_its_own_topic_and_a_dead_letter_reaches_its_subscriber()
 {
    let t = topics();
    create_topics(std::slice::from_ref(&t.orders)).await;
    let db = TestDb::create().await;
    let mut config = kafka_config(&db, &t, &format!("g-{}", Uuid::new_v4()));
    config.kafka.publish_topics = Config::defaults().expect("defaults").kafka.publish_topics;
    config.worker.time_scale = 0.0001;
    // Retries on the scaled clock: the 2 h 36 min schedule takes about a second.
    let app = TestApp::spawn_with_clock(
        std::sync::Arc::new(db),
        config,
        Roles::ALL,
        jobs::ManualClock::new(crate::common::t0()),
        std::sync::Arc::new(jobs::ScaledClock::new(0.0001)),
    )
    .await;
    let failing = Receiver::start(&[500; 5]).await;
    let ok = Receiver::start(&[]).await;
    let (dead_sub, _) = app
        .subscribe("store-t", &failing.url(), &["order.placed"])
        .await;
    let (ok_sub, _) = app.subscribe("store-t", &ok.url(), &["order.placed"]).await;
    let producer = producer();
    let e = event("order.placed", "store-t", json!({"n": 1}));
    produce(&producer, &t.orders, "k", e.to_string().as_bytes()).await;

    // A consumer of webhook.dead_lettered alone gets the dead letter, with the specified fields.
    let dead = read("webhook.dead_lettered", 1, Duration::from_secs(60)).await;
    assert_eq!(dead[0]["eventType"], "webhook.dead_lettered");
    assert_eq!(dead[0]["data"]["subscriptionId"], dead_sub.to_string());
    assert_eq!(dead[0]["data"]["storeId"], "store-t");
    assert!(dead[0]["data"]["deliveryId"].is_string());
    assert!(
        dead[0]["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("500")),
        "{}",
        dead[0]
    );
    let delivered = read("webhook.delivered", 1, WAIT).await;
    assert_eq!(delivered[0]["eventType"], "webhook.delivered");
    assert_eq!(delivered[0]["data"]["subscriptionId"], ok_sub.to_string());
}

/// Catches: a partition whose committed offset falls inside its last record batch waiting forever. tansu answers a
/// fetch that starts inside a record batch with the batches after it: inside the last one, with nothing until more
/// is produced. A killed ingest leaves exactly that (seen in `processes`: the restarted one never ingested the rest).
#[tokio::test]
async fn a_partition_resumed_inside_its_last_record_batch_is_sought_back_and_the_rest_ingested() {
    const EVENTS: usize = 40;
    const STORED: i64 = 20;
    let t = topics();
    create_topics(&[t.orders.clone(), t.publish.clone()]).await;
    let db = TestDb::create().await;
    let url = db.url.clone();
    let group = format!("g-{}", Uuid::new_v4());
    let mut config = kafka_config(&db, &t, &group);
    config.kafka.stall_check_ms = 200;
    let delivering = Roles {
        ingest: false,
        ..Roles::ALL
    };
    let app = TestApp::spawn_with(db, config.clone(), delivering).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-q", &receiver.url(), &["*"]).await;

    // One produce request (the producer lingers to gather every send), so one record batch.
    let p: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "500")
        .create()
        .expect("producer");
    let events: Vec<String> = (0..EVENTS)
        .map(|n| event("order.placed", "store-q", json!({"n": n})).to_string())
        .collect();
    let sent = futures::future::join_all(events.iter().map(|e| {
        p.send(
            rdkafka::producer::FutureRecord::<str, str>::to(&t.orders)
                .key("k")
                .payload(e)
                .partition(0),
            Duration::from_secs(10),
        )
    }))
    .await;
    assert!(sent.iter().all(Result::is_ok), "produced");

    // As a killed ingest leaves it: Postgres holds the first 20 events' offsets, and so does the broker.
    sqlx::query("INSERT INTO kafka_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, 0, $3)")
        .bind(&group)
        .bind(&t.orders)
        .bind(STORED)
        .execute(&app.pool)
        .await
        .expect("stored offset");
    commit_offset(&group, &t.orders, STORED);

    let ingest = Roles {
        ingest: true,
        api: false,
        worker: false,
    };
    let shared = TestDb {
        name: format!("unused_{}", Uuid::new_v4().simple()),
        url,
    };
    let _ingest = TestApp::spawn_with(shared, config, ingest).await;
    let mut got: Vec<i64> = Vec::new();
    for _ in STORED..EVENTS as i64 {
        let body: Value = serde_json::from_slice(&receiver.next(WAIT).await.body).expect("json");
        got.push(body["data"]["n"].as_i64().expect("n"));
    }
    got.sort_unstable();
    assert_eq!(
        got,
        (STORED..EVENTS as i64).collect::<Vec<_>>(),
        "the events after the stored offset, once each"
    );
    receiver.expect_silence(Duration::from_millis(500)).await;
}

/// Commit `offset` of partition 0 of `topic` for `group` to the broker.
fn commit_offset(group: &str, topic: &str, offset: i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
        .expect("offset");
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}
