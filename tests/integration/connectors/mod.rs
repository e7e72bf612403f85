//! Connectors against a local fake of Amazon SP-API, eBay and Google Merchant API that checks requests like the
//! real services: exact calls per event, retries on the webhook schedule into dead letters, Amazon order polling,
//! write-only credentials, deactivation, and one poll per interval across worker processes.
//!
//! Split by concern: `marketplaces` (calls per event), `retries` (schedule, pacing, refusals), `polling` (inbound),
//! `configs` (configs and credentials), `processes` (worker processes sharing one database).

mod configs;
mod contracts;
mod marketplaces;
mod polling;
mod processes;
mod retries;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Duration as Minutes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::channels::*;
use crate::common::client::{Connector, ConnectorJob, JsonAnswer, SyncRun, expect_json};
use crate::common::process::ServiceProcess;
use crate::common::{ADMIN_TOKEN, TestApp, TestDb, due_times, event, t0, test_config};
use integration_service::startup::Roles;

const STORE: &str = "store-c";

/// `poll`: seconds between order polls, 0 for none.
fn amazon_body(poll: i32) -> Value {
    json!({
        "connectorType": "amazon",
        "displayName": "Amazon US",
        "settings": {"sellerId": "A2SELLER", "marketplaceId": "ATVPDKIKX0DER", "ordersCreatedAfter": "2026-11-01T00:00:00Z"},
        "pollIntervalSecs": poll,
        "credentials": {"apiKey": AMAZON_CLIENT_ID, "apiSecret": AMAZON_CLIENT_SECRET, "refreshToken": AMAZON_REFRESH_TOKEN},
    })
}

fn ebay_body() -> Value {
    json!({
        "connectorType": "ebay",
        "displayName": "eBay",
        "settings": {},
        "credentials": {"apiKey": EBAY_CLIENT_ID, "apiSecret": EBAY_CLIENT_SECRET, "refreshToken": EBAY_REFRESH_TOKEN},
    })
}

fn google_body() -> Value {
    json!({
        "connectorType": "google_shopping",
        "displayName": "Google Shopping",
        "settings": {"merchantId": "123", "dataSourceId": "456"},
        "credentials": {"apiKey": GOOGLE_CLIENT_EMAIL, "apiSecret": google_private_key()},
    })
}

/// An API-only test app whose channel endpoints (deployment configuration) are a fresh fake.
async fn app_with_fake() -> (TestApp, FakeChannels) {
    let fake = FakeChannels::start().await;
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    fake.configure(&mut config);
    (TestApp::spawn_with(db, config, Roles::API).await, fake)
}

/// Create a config of `STORE`.
async fn create(app: &TestApp, body: &Value) -> Connector {
    app.api().create_connector(STORE, body).await
}

/// Create a config and return its id.
async fn create_id(app: &TestApp, body: &Value) -> String {
    create(app, body).await.config_id.to_string()
}

/// The first page of a config's jobs (`query` filters, e.g. `status=DEAD_LETTERED`).
async fn jobs(app: &TestApp, config_id: &str, query: &str) -> Vec<ConnectorJob> {
    app.api().connector_jobs(STORE, config_id, query).await
}

/// Between two looks at a config's jobs: fail with them once `deadline` has passed, otherwise pause.
async fn not_yet(deadline: tokio::time::Instant, jobs: &[ConnectorJob]) {
    assert!(
        tokio::time::Instant::now() < deadline,
        "jobs never finished: {jobs:?}"
    );
    crate::common::wait::pause().await;
}

/// An Amazon config limited to `per_second` calls (burst 1), and `events` stock updates of distinct SKUs for it.
async fn rate_limited_backlog(app: &TestApp, per_second: f64, events: usize) -> String {
    let mut body = amazon_body(0);
    body["settings"]["rateLimit"] = json!({"perSecond": per_second, "burst": 1});
    let id = create_id(app, &body).await;
    for n in 0..events {
        let data = json!({"sku": format!("R-{n}"), "quantity": n});
        app.post_event(&event("inventory.updated", STORE, data))
            .await;
    }
    id
}

/// `GET path` of `STORE` as the whole document.
async fn get(app: &TestApp, path: &str) -> Value {
    let response = app
        .as_store(Method::GET, path, STORE)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// The first page of a config's sync log (`query` filters, e.g. `direction=INBOUND`).
async fn sync_log(app: &TestApp, config_id: &str, query: &str) -> Vec<SyncRun> {
    app.api().sync_log(STORE, config_id, query).await
}

fn product(sku: &str) -> Value {
    json!({"productId": "p-1", "title": "Trail Shoe", "brand": "Acme", "description": "Light trail runner",
           "imageUrls": ["https://cdn.example/ts.jpg"], "url": "https://shop.example/p/1",
           "price": {"amount": "89.90", "currency": "USD"}, "sku": sku, "quantity": 7, "gtin": "4006381333931"})
}

fn fulfilled(order: &str) -> Value {
    json!({"orderId": "o-1", "fulfillmentId": "f-1", "carrier": "UPS", "trackingNumber": "1Z999",
           "shippedAt": "2026-11-23T09:30:00Z", "channel": {"connector": "amazon", "externalOrderId": order},
           "items": [{"externalItemId": "item-1", "sku": "TS-42", "quantity": 1}]})
}
