//! An event's body is stored once, on its ingested event, whatever its fan-out; the worker loads it once per event
//! and shares it between the deliveries it signs and sends.

use std::time::Duration;

use jobs::queue::attempts::AttemptTable;
use jobs::webhook::WebhookDeps;
use serde_json::{Value, json};
use uuid::Uuid;
use workflows::ids::DeliveryId;
use workflows::signing::verify_ss3;

use crate::common::{Receiver, TestApp, event};

const WAIT: Duration = Duration::from_secs(10);
const FAN_OUT: usize = 5;

/// Catches: a copy of the body per delivery row (or per loaded delivery), a delivery sent without its event's body,
/// or a body that differs between the subscriptions of one event.
#[tokio::test]
async fn a_large_event_fanned_out_is_stored_and_loaded_once_and_every_receiver_gets_it_signed() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start(&[]).await;
    let mut secrets = Vec::new();
    for i in 0..FAN_OUT {
        let target = format!("{}/s{i}", receiver.url().trim_end_matches('/'));
        let (_, secret) = app
            .subscribe("store-big", &target, &["catalog.imported"])
            .await;
        secrets.push(secret);
    }
    // 256 KiB of hex, which Postgres' compression cannot shrink much: one copy is plain to see in the sizes.
    let blob: String = (0..8192)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect();
    let ingested = app
        .api()
        .ingest(&event(
            "catalog.imported",
            "store-big",
            json!({"blob": blob}),
        ))
        .await;
    assert_eq!(ingested.delivery_ids.len(), FAN_OUT);

    let (bodies, stored): (i64, i64) = sqlx::query_as(
        "SELECT count(payload), coalesce(sum(pg_column_size(payload)), 0)::bigint FROM ingested_events",
    )
    .fetch_one(&app.pool)
    .await
    .expect("bodies");
    assert_eq!(bodies, 1, "one body for the event");
    let len = i64::try_from(blob.len()).expect("length");
    assert!(
        stored > len / 2 && stored < 2 * len,
        "{stored} bytes stored for a {len}-byte blob"
    );
    let rows = app
        .count("SELECT coalesce(sum(pg_column_size(d.*)), 0)::bigint FROM webhook_deliveries d")
        .await;
    assert!(
        rows < 8 * 1024,
        "{FAN_OUT} delivery rows take {rows} bytes: they refer to the body"
    );

    let ids: Vec<DeliveryId> = ingested
        .delivery_ids
        .iter()
        .map(|id| DeliveryId(*id))
        .collect();
    let loaded = <WebhookDeps as AttemptTable>::load(&app.pool, &ids)
        .await
        .expect("load");
    assert_eq!(loaded.len(), FAN_OUT);
    let first = &loaded[&ids[0]].body;
    assert!(
        loaded.values().all(|d| d.body.as_ptr() == first.as_ptr()),
        "the deliveries of one event share one loaded body"
    );
    let body: Value = serde_json::from_slice(first).expect("JSON");
    assert_eq!(body["data"]["blob"], blob.as_str());

    app.worker("w1")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..FAN_OUT {
        let got = receiver.next(WAIT).await;
        let i: usize = got
            .path
            .rsplit("/s")
            .next()
            .expect("/s")
            .parse()
            .expect("index");
        assert_eq!(
            verify_ss3(&secrets[i], &got.body, got.header("x-ss3-signature")),
            Ok(()),
            "receiver {i}"
        );
        sent.push(got.body);
    }
    assert!(sent.windows(2).all(|w| w[0] == w[1]), "one body for all");
    assert_eq!(
        sent[0],
        first.as_ref(),
        "the bytes loaded are the bytes sent"
    );
    let delivery = app
        .delivery("store-big", &ingested.delivery_ids[0].to_string())
        .await;
    assert_eq!(delivery.status, "DELIVERED");
    assert_eq!(
        delivery.payload["data"]["blob"],
        blob.as_str(),
        "the log shows the body sent"
    );
}
