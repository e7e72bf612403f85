//! Inbound: Amazon order polling (pages, cursor, publishing once), and events in and orders out through Kafka.

use super::*;

/// Catches: pagination not followed, events not published, a cursor that does not advance, duplicates on the
/// next poll.
#[tokio::test]
async fn amazon_poll_walks_pages_publishes_orders_advances_the_cursor_and_publishes_nothing_twice()
{
    let (app, fake) = app_with_fake().await;
    fake.add_order("113-1", "2026-11-20T10:00:00Z");
    fake.add_order("113-2", "2026-11-21T11:00:00Z");
    fake.add_order("113-3", "2026-11-22T12:00:00Z");
    let config = create(&app, &amazon_body(600)).await;
    let id = config.config_id.to_string();
    assert_eq!(config.poll_interval_secs, Some(600));
    let worker = app.worker("w").await;
    worker
        .run_pending_jobs()
        .await
        .expect("activation queues a first poll");

    let pages: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/2026-01-01/orders")
        .collect();
    assert_eq!(pages.len(), 2, "two pages of two orders");
    assert_eq!(
        pages[0].param("lastUpdatedAfter").as_deref(),
        Some("2026-11-01T00:00:00Z")
    );
    assert_eq!(
        pages[0].param("marketplaceIds").as_deref(),
        Some("ATVPDKIKX0DER")
    );
    assert_eq!(
        pages[1].param("paginationToken").as_deref(),
        Some("2~lastUpdatedTime=2026-11-01T00:00:00Z")
    );
    assert_eq!(
        pages[1].param("lastUpdatedAfter").as_deref(),
        Some("2026-11-01T00:00:00Z"),
        "a page repeats the request's parameters"
    );
    let published: Vec<(String, Value)> =
        sqlx::query_as("SELECT topic, payload FROM outbox_messages ORDER BY outbox_id, position")
            .fetch_all(&app.pool)
            .await
            .expect("outbox");
    assert_eq!(published.len(), 3);
    for (topic, payload) in &published {
        assert_eq!(
            topic, "marketplace.order.received",
            "the default topic of its type"
        );
        assert_eq!(payload["eventType"], "marketplace.order.received");
        assert_eq!(payload["storeId"], STORE);
    }
    let ids: Vec<&str> = published
        .iter()
        .map(|(_, p)| p["data"]["externalOrderId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, vec!["113-1", "113-2", "113-3"]);
    let after = app.api().connector(STORE, &id).await;
    assert_eq!(after.poll_cursor.as_deref(), Some("2026-11-22T12:00:00Z"));
    let inbound = sync_log(&app, &id, "direction=INBOUND").await;
    assert_eq!(
        (inbound[0].record_count, inbound[0].status.as_str()),
        (3, "SUCCEEDED")
    );

    // The next poll starts from the cursor; the newest order comes back (lastUpdatedAfter is inclusive) and is not
    // published again.
    fake.clear_calls();
    let queued = app
        .as_store(Method::POST, &format!("/connectors/{id}/poll"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(queued.status(), 202);
    worker.run_pending_jobs().await.expect("run");
    let pages: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/2026-01-01/orders")
        .collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].param("lastUpdatedAfter").as_deref(),
        Some("2026-11-22T12:00:00Z")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox_messages").await,
        3,
        "nothing new"
    );
    let inbound = sync_log(&app, &id, "direction=INBOUND").await;
    assert_eq!(inbound.len(), 2);
    assert_eq!(inbound[0].record_count, 0);
    // The superseded scheduled poll did nothing: one run per poll number.
    let seqs: Vec<i64> = inbound.iter().filter_map(|r| r.poll_seq).collect();
    assert_eq!(seqs.len(), 2);
    assert_ne!(seqs[0], seqs[1]);
}

/// Catches: Kafka ingest not fanning out to connectors, or polled orders never reaching Kafka.
#[tokio::test]
async fn through_kafka_an_event_reaches_amazon_and_polled_orders_are_published_to_kafka() {
    use crate::common::kafka::{brokers, create_topics, produce, producer, read};
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (topic, publish, inbound) = (
        format!("ss3.c{run}.inventory"),
        format!("integration.c{run}.webhooks"),
        format!("integration.c{run}.marketplace"),
    );
    create_topics(&[topic.clone(), publish.clone(), inbound.clone()]).await;
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.kafka.brokers = brokers();
    config.kafka.topic_regex = format!("^ss3\\.c{run}\\..+");
    config.kafka.group_id = format!("g-{run}");
    config.kafka.publish_topics = crate::common::kafka::one_topic(&publish);
    config
        .kafka
        .publish_topics
        .insert("marketplace.order.received".into(), inbound.clone());
    let fake = FakeChannels::start().await;
    fake.configure(&mut config);
    let app = TestApp::spawn_with(db, config, Roles::ALL).await;
    fake.add_order("113-K", "2026-11-20T10:00:00Z");
    create(&app, &amazon_body(3600)).await;

    let orders = read(&inbound, 1, Duration::from_secs(30)).await;
    assert_eq!(orders[0]["eventType"], "marketplace.order.received");
    assert_eq!(orders[0]["data"]["externalOrderId"], "113-K");

    let body = event(
        "inventory.updated",
        STORE,
        json!({"sku": "K-1", "quantity": 4}),
    );
    produce(&producer(), &topic, STORE, body.to_string().as_bytes()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !fake.api_calls().iter().any(|c| c.method == "PATCH") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Kafka event never reached Amazon: {:?}",
            fake.calls()
        );
        crate::common::wait::pause().await;
    }
    let patch = fake
        .api_calls()
        .into_iter()
        .find(|c| c.method == "PATCH")
        .expect("patch");
    assert_eq!(patch.path, "/listings/2021-08-01/items/A2SELLER/K-1");
    assert_eq!(patch.json()["patches"][0]["op"], "merge");
    assert_eq!(patch.json()["patches"][0]["value"][0]["quantity"], 4);
}
