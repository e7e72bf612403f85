//! Connectors against a local fake of Amazon SP-API, eBay and Google Merchant API that checks requests like the
//! real services: exact calls per event, retries on the webhook schedule into dead letters, Amazon order polling,
//! write-only credentials, deactivation, and one poll per interval across worker processes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Duration as Minutes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::channels::*;
use crate::common::process::ServiceProcess;
use crate::common::{ADMIN_TOKEN, TestApp, TestDb, event, t0, test_config};
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

async fn create(app: &TestApp, body: &Value) -> Value {
    let response = app
        .as_store(Method::POST, "/connectors", STORE)
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        201,
        "create connector: {}",
        response.text().await.unwrap_or_default()
    );
    response.json().await.expect("json")
}

/// Create a config and return its id.
async fn create_id(app: &TestApp, body: &Value) -> String {
    create(app, body).await["configId"]
        .as_str()
        .expect("id")
        .to_owned()
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

async fn get(app: &TestApp, path: &str) -> Value {
    let response = app
        .as_store(Method::GET, path, STORE)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

async fn sync_log(app: &TestApp, config_id: &str, query: &str) -> Vec<Value> {
    get(app, &format!("/connectors/{config_id}/sync-log?{query}")).await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
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

/// Catches: wrong paths, query, auth header, LWA form, listing attributes, a shipment confirmed twice on retry.
#[tokio::test]
async fn amazon_events_make_exactly_the_listings_inventory_and_shipment_calls() {
    let (app, fake) = app_with_fake().await;
    let config = create(&app, &amazon_body(0)).await;
    let id = config["configId"].as_str().expect("id").to_owned();
    assert_eq!(
        config["eventSubscriptions"],
        json!(["product.updated", "inventory.updated", "order.fulfilled"])
    );
    let worker = app.worker("w").await;

    app.post_event(&event("product.updated", STORE, product("TS-42")))
        .await;
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"items": [{"sku": "TS-42", "quantity": 3}, {"sku": "TS-43", "quantity": 0}]}),
    ))
    .await;
    app.post_event(&event("order.fulfilled", STORE, fulfilled("113-0000001")))
        .await;
    app.post_event(&event("order.placed", STORE, json!({})))
        .await; // not subscribed: no job
    worker.run_pending_jobs().await.expect("run");

    let tokens = fake.token_calls();
    assert_eq!(
        tokens.len(),
        1,
        "one LWA exchange, cached for the other calls"
    );
    let form = tokens[0].form();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(
        (form["client_id"].as_str(), form["refresh_token"].as_str()),
        (AMAZON_CLIENT_ID, AMAZON_REFRESH_TOKEN)
    );
    let mut lines: Vec<String> = fake.api_calls().iter().map(|c| c.line()).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "GET /orders/v0/orders/113-0000001",
            "PATCH /listings/2021-08-01/items/A2SELLER/TS-42",
            "PATCH /listings/2021-08-01/items/A2SELLER/TS-43",
            "POST /orders/v0/orders/113-0000001/shipmentConfirmation",
            "PUT /listings/2021-08-01/items/A2SELLER/TS-42",
        ]
    );
    for call in fake.api_calls() {
        assert_eq!(
            call.header("x-amz-access-token"),
            "Atza|access-1",
            "{}",
            call.line()
        );
    }
    let put = fake
        .api_calls()
        .into_iter()
        .find(|c| c.method == "PUT")
        .expect("put");
    assert_eq!(
        put.param("marketplaceIds").as_deref(),
        Some("ATVPDKIKX0DER")
    );
    let body = put.json();
    assert_eq!(body["productType"], "PRODUCT");
    assert_eq!(body["requirements"], "LISTING");
    assert_eq!(body["attributes"]["item_name"][0]["value"], "Trail Shoe");
    assert_eq!(
        body["attributes"]["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"],
        89.9
    );
    assert_eq!(
        body["attributes"]["fulfillment_availability"][0]["quantity"],
        7
    );
    let patch = fake
        .api_calls()
        .into_iter()
        .find(|c| c.path.ends_with("TS-43"))
        .expect("patch");
    assert_eq!(patch.json()["patches"][0]["value"][0]["quantity"], 0);
    let confirm = fake
        .api_calls()
        .into_iter()
        .find(|c| c.path.ends_with("shipmentConfirmation"))
        .expect("confirm");
    assert_eq!(
        confirm.json()["packageDetail"]["orderItems"],
        json!([{"orderItemId": "item-1", "quantity": 1}])
    );
    assert_eq!(confirm.json()["packageDetail"]["trackingNumber"], "1Z999");

    let log = sync_log(&app, &id, "direction=OUTBOUND").await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r["status"] == "SUCCEEDED"), "{log:?}");
    let mut records: Vec<(String, i64)> = log
        .iter()
        .map(|r| {
            (
                r["entityType"].as_str().unwrap_or("").to_owned(),
                r["recordCount"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        vec![
            ("inventory".into(), 2),
            ("listing".into(), 1),
            ("shipment".into(), 1)
        ]
    );

    // The platform re-sends the fulfillment (new event id): Amazon already shows the order shipped, so no second
    // confirmation is posted.
    fake.clear_calls();
    app.post_event(&event("order.fulfilled", STORE, fulfilled("113-0000001")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let lines: Vec<String> = fake.api_calls().iter().map(|c| c.line()).collect();
    assert_eq!(lines, vec!["GET /orders/v0/orders/113-0000001"]);
    let skipped = sync_log(&app, &id, "status=SKIPPED").await;
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]["errorSummary"]
            .as_str()
            .unwrap_or("")
            .contains("already confirmed")
    );
}

/// Catches: eBay calls not batched, wrong auth (Basic for the token, Bearer after), prices sent without offer ids.
#[tokio::test]
async fn ebay_events_use_bulk_inventory_calls_and_update_existing_offers() {
    let (app, fake) = app_with_fake().await;
    fake.set_offers("TS-42", &["5001"]);
    let config = create(&app, &ebay_body()).await;
    let worker = app.worker("w").await;
    let data = json!({"productId": "p-1", "title": "Trail Shoe", "brand": "Acme", "price": {"amount": "89.9", "currency": "USD"},
        "variants": [{"sku": "TS-42", "quantity": 7, "attributes": {"Size": "42"}}, {"sku": "TS-43", "quantity": 2}]});
    app.post_event(&event("product.updated", STORE, data)).await;
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "TS-43", "quantity": 5}),
    ))
    .await;
    app.post_event(&event("order.fulfilled", STORE, fulfilled("x")))
        .await; // eBay does not subscribe to it
    worker.run_pending_jobs().await.expect("run");

    assert_eq!(fake.token_calls().len(), 1);
    let calls = fake.api_calls();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    let bulk_items = "POST /sell/inventory/v1/bulk_create_or_replace_inventory_item";
    let bulk_price = "POST /sell/inventory/v1/bulk_update_price_quantity";
    assert_eq!(
        lines.iter().filter(|l| *l == bulk_items).count(),
        1,
        "both variants in one bulk call: {lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| *l == "GET /sell/inventory/v1/offer")
            .count(),
        2
    );
    assert_eq!(
        lines.iter().filter(|l| *l == bulk_price).count(),
        2,
        "one price update, one quantity update"
    );
    assert_eq!(calls.len(), 5);
    for c in &calls {
        assert!(
            c.header("authorization")
                .starts_with("Bearer v^1.1#access-"),
            "{}",
            c.line()
        );
        assert_eq!(c.header("content-language"), "en-US");
    }
    let items = calls
        .iter()
        .find(|c| c.line() == bulk_items)
        .expect("bulk")
        .json();
    assert_eq!(items["requests"][0]["sku"], "TS-42");
    assert_eq!(
        items["requests"][0]["product"]["aspects"]["Size"],
        json!(["42"])
    );
    assert_eq!(
        items["requests"][1]["availability"]["shipToLocationAvailability"]["quantity"],
        2
    );
    let price_bodies: Vec<Value> = calls
        .iter()
        .filter(|c| c.line() == bulk_price)
        .map(|c| c.json())
        .collect();
    assert!(price_bodies.contains(&json!({"requests": [{"sku": "TS-42", "offers": [
        {"offerId": "5001", "price": {"value": "89.90", "currency": "USD"}, "availableQuantity": 7}]}]})), "{price_bodies:?}");
    assert!(price_bodies.contains(
        &json!({"requests": [{"sku": "TS-43", "shipToLocationAvailability": {"quantity": 5}}]})
    ));
    let log = sync_log(&app, config["configId"].as_str().expect("id"), "").await;
    assert_eq!(log.len(), 2, "the fulfillment was never fanned out to eBay");
}

/// Catches: an unsigned or wrongly-claimed JWT, a product input in the wrong shape or data source.
#[tokio::test]
async fn google_product_updates_insert_product_inputs_with_a_service_account_token() {
    let (app, fake) = app_with_fake().await;
    create(&app, &google_body()).await;
    let worker = app.worker("w").await;
    app.post_event(&event("product.updated", STORE, product("TS-42")))
        .await;
    worker.run_pending_jobs().await.expect("run");

    let tokens = fake.token_calls();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].form()["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let calls = fake.api_calls();
    assert_eq!(
        calls.len(),
        1,
        "the fake verified the JWT signature and claims, then got one insert"
    );
    let insert = &calls[0];
    assert_eq!(
        insert.line(),
        "POST /products/v1/accounts/123/productInputs:insert"
    );
    assert_eq!(
        insert.param("dataSource").as_deref(),
        Some("accounts/123/dataSources/456")
    );
    assert_eq!(insert.header("authorization"), "Bearer ya29.access-1");
    let body = insert.json();
    assert_eq!(
        (
            body["offerId"].as_str(),
            body["contentLanguage"].as_str(),
            body["feedLabel"].as_str()
        ),
        (Some("TS-42"), Some("en"), Some("US"))
    );
    assert_eq!(
        body["productAttributes"]["price"],
        json!({"amountMicros": "89900000", "currencyCode": "USD"})
    );
    assert_eq!(body["productAttributes"]["availability"], "IN_STOCK");
    assert_eq!(body["productAttributes"]["gtins"], json!(["4006381333931"]));
}

/// Catches: connector failures not following the 1/5/30/120-minute schedule, no dead letter or event after the
/// fifth, a re-trigger that does not restart the schedule. Run for every connector.
#[tokio::test]
async fn channel_5xx_and_429_are_retried_on_the_schedule_then_dead_lettered_and_retrigger_recovers()
{
    for (kind, failing_path, status) in [
        ("amazon", "/listings/", 503),
        ("ebay", "/sell/", 500),
        ("google_shopping", "/products/", 429),
    ] {
        let (app, fake) = app_with_fake().await;
        let body = match kind {
            "amazon" => amazon_body(0),
            "ebay" => ebay_body(),
            _ => google_body(),
        };
        let id = create_id(&app, &body).await;
        fake.fail(failing_path, 5, status, None);
        app.post_event(&event("product.updated", STORE, product("TS-42")))
            .await;
        let worker = app.worker("w").await;
        let due = [
            t0(),
            t0() + Minutes::minutes(1),
            t0() + Minutes::minutes(6),
            t0() + Minutes::minutes(36),
            t0() + Minutes::minutes(156),
        ];
        for (n, at) in due.iter().enumerate() {
            if n > 0 {
                app.clock.set(*at - Minutes::seconds(2));
                let early = worker.run_once().await.expect("run");
                assert_eq!(
                    (early.jobs, early.not_yet_due),
                    (1, 1),
                    "{kind}: attempt {} ran early",
                    n + 1
                );
            }
            app.clock.set(*at);
            assert_eq!(
                worker.run_pending_jobs().await.expect("run"),
                1,
                "{kind}: attempt {}",
                n + 1
            );
            let jobs = get(&app, &format!("/connectors/{id}/jobs")).await;
            let job = &jobs["items"][0];
            if n < 4 {
                assert_eq!(job["status"], "FAILED", "{kind}");
                let next: chrono::DateTime<chrono::Utc> = job["nextRetryAt"]
                    .as_str()
                    .expect("next")
                    .parse()
                    .expect("time");
                assert_eq!(
                    next,
                    due[n + 1],
                    "{kind}: next attempt after attempt {}",
                    n + 1
                );
            }
        }
        let dead = get(&app, &format!("/connectors/{id}/jobs?status=DEAD_LETTERED")).await;
        let job = dead["items"][0].clone();
        assert_eq!(job["attemptNumber"], 5, "{kind}");
        assert!(
            job["lastError"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("HTTP {status}")),
            "{kind}: {job}"
        );
        let failed = sync_log(&app, &id, "status=FAILED").await;
        assert_eq!(failed.len(), 5, "{kind}: every attempt is in the sync log");
        let started: Vec<chrono::DateTime<chrono::Utc>> = failed
            .iter()
            .rev()
            .map(|r| r["startedAt"].as_str().expect("t").parse().expect("time"))
            .collect();
        assert_eq!(started, due.to_vec(), "{kind}");
        assert_eq!(app.count("SELECT count(*) FROM outbox WHERE payload->>'eventType' = 'connector.dead_lettered'").await, 1, "{kind}");

        let job_id = job["jobId"].as_str().expect("job id");
        let again = app
            .as_store(
                Method::POST,
                &format!("/connectors/{id}/jobs/{job_id}/retrigger"),
                STORE,
            )
            .send()
            .await
            .expect("req");
        assert_eq!(again.status(), 200, "{kind}");
        worker.run_pending_jobs().await.expect("run");
        let done = get(&app, &format!("/connectors/{id}/jobs")).await;
        assert_eq!(
            done["items"][0]["status"], "SUCCEEDED",
            "{kind}: the channel recovered"
        );
        assert_eq!(
            done["items"][0]["attemptNumber"], 1,
            "{kind}: the schedule restarted"
        );
    }
}

/// Catches: a 429 not waited out, or the config's other calls not paced after it.
#[tokio::test]
async fn a_short_retry_after_is_waited_out_in_place() {
    let (app, fake) = app_with_fake().await;
    let id = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 429, Some(1));
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]}),
    ))
    .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let calls = fake.api_calls();
    assert_eq!(
        calls.len(),
        3,
        "429, the same request again, then the second SKU"
    );
    assert_eq!(
        calls[0].path, calls[1].path,
        "the refused request was sent again"
    );
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(950),
        "waited {:?}",
        calls[1].at - calls[0].at
    );
    let log = sync_log(&app, &id, "").await;
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["requests"].as_i64()),
        (Some("SUCCEEDED"), Some(4)),
        "{log:?}"
    );
}

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
    let id = config["configId"].as_str().expect("id").to_owned();
    assert_eq!(config["pollIntervalSecs"], 600);
    let worker = app.worker("w").await;
    worker
        .run_pending_jobs()
        .await
        .expect("activation queues a first poll");

    let pages: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/v0/orders")
        .collect();
    assert_eq!(pages.len(), 2, "two pages of two orders");
    assert_eq!(
        pages[0].param("CreatedAfter").as_deref(),
        Some("2026-11-01T00:00:00Z")
    );
    assert_eq!(
        pages[0].param("MarketplaceIds").as_deref(),
        Some("ATVPDKIKX0DER")
    );
    assert_eq!(
        pages[1].param("NextToken").as_deref(),
        Some("2|2026-11-01T00:00:00Z")
    );
    let published: Vec<(String, Value)> =
        sqlx::query_as("SELECT topic, payload FROM outbox ORDER BY outbox_id")
            .fetch_all(&app.pool)
            .await
            .expect("outbox");
    assert_eq!(published.len(), 3);
    for (topic, payload) in &published {
        assert_eq!(topic, "integration.marketplace");
        assert_eq!(payload["eventType"], "marketplace.order.received");
        assert_eq!(payload["storeId"], STORE);
    }
    let ids: Vec<&str> = published
        .iter()
        .map(|(_, p)| p["data"]["externalOrderId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, vec!["113-1", "113-2", "113-3"]);
    let after = get(&app, &format!("/connectors/{id}")).await;
    assert_eq!(after["pollCursor"], "2026-11-22T12:00:00Z");
    let inbound = sync_log(&app, &id, "direction=INBOUND").await;
    assert_eq!(
        (
            inbound[0]["recordCount"].as_i64(),
            inbound[0]["status"].as_str()
        ),
        (Some(3), Some("SUCCEEDED"))
    );

    // The next poll starts from the cursor; the newest order comes back (CreatedAfter is inclusive) and is not
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
        .filter(|c| c.path == "/orders/v0/orders")
        .collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].param("CreatedAfter").as_deref(),
        Some("2026-11-22T12:00:00Z")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        3,
        "nothing new"
    );
    let inbound = sync_log(&app, &id, "direction=INBOUND").await;
    assert_eq!(inbound.len(), 2);
    assert_eq!(inbound[0]["recordCount"], 0);
    // The superseded scheduled poll did nothing: one run per poll number.
    let seqs: Vec<i64> = inbound
        .iter()
        .filter_map(|r| r["pollSeq"].as_i64())
        .collect();
    assert_eq!(seqs.len(), 2);
    assert_ne!(seqs[0], seqs[1]);
}

/// Catches: a credential echoed by any endpoint, or stored in the database in clear.
#[tokio::test]
async fn credentials_are_write_only() {
    let (app, _fake) = app_with_fake().await;
    let created = create(&app, &amazon_body(0)).await;
    let id = created["configId"].as_str().expect("id").to_owned();
    let replaced = app
        .as_store(Method::PUT, &format!("/connectors/{id}/credentials"), STORE)
        .json(&json!({"apiKey": AMAZON_CLIENT_ID, "apiSecret": AMAZON_CLIENT_SECRET, "refreshToken": AMAZON_REFRESH_TOKEN}))
        .send()
        .await
        .expect("req");
    assert_eq!(replaced.status(), 204);
    assert!(replaced.text().await.unwrap_or_default().is_empty());
    let incomplete = app
        .as_store(Method::PUT, &format!("/connectors/{id}/credentials"), STORE)
        .json(&json!({"apiKey": "x"}))
        .send()
        .await
        .expect("req");
    assert_eq!(incomplete.status(), 422);
    let mut bodies = vec![created.to_string()];
    for path in [
        format!("/connectors/{id}"),
        "/connectors".into(),
        format!("/connectors/{id}/sync-log"),
        format!("/connectors/{id}/jobs"),
        "/connector-types".into(),
    ] {
        bodies.push(get(&app, &path).await.to_string());
    }
    let tested = app
        .as_store(Method::POST, &format!("/connectors/{id}/test"), STORE)
        .send()
        .await
        .expect("req");
    let tested: Value = tested.json().await.expect("json");
    assert_eq!(tested["ok"], true, "{tested}");
    bodies.push(tested.to_string());
    bodies.push(
        app.http
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("req")
            .text()
            .await
            .expect("text"),
    );
    for body in &bodies {
        for secret in [AMAZON_CLIENT_SECRET, AMAZON_REFRESH_TOKEN, AMAZON_CLIENT_ID] {
            assert!(!body.contains(secret), "a credential leaked: {body}");
        }
    }
    let shown = get(&app, &format!("/connectors/{id}")).await;
    assert_eq!(
        shown["credentials"]["set"],
        json!(["apiKey", "apiSecret", "refreshToken"])
    );
    assert_eq!(shown["credentials"]["complete"], true);
    let stored: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT path, ciphertext FROM encrypted_secrets WHERE path LIKE 'connector/%' ORDER BY path")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(
        stored.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        ["api-key", "api-secret", "refresh-token"].map(|f| format!("connector/{id}/{f}"))
    );
    for (_, ciphertext) in stored {
        assert!(
            !String::from_utf8_lossy(&ciphertext).contains("Atzr|"),
            "stored in clear"
        );
    }
    // Activation without credentials is refused.
    let mut bare = amazon_body(0);
    bare.as_object_mut().expect("object").remove("credentials");
    bare["isActive"] = json!(true);
    let refused = app
        .as_store(Method::POST, "/connectors", STORE)
        .json(&bare)
        .send()
        .await
        .expect("req");
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "connector_credentials_missing");
}

/// Catches: events fanned out to an inactive config, or its waiting retries continuing.
#[tokio::test]
async fn a_deactivated_config_receives_nothing_and_its_retries_stop() {
    let (app, fake) = app_with_fake().await;
    let id = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 503, None);
    let worker = app.worker("w").await;
    app.post_event(&event("product.updated", STORE, product("A")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(
        get(&app, &format!("/connectors/{id}/jobs")).await["items"][0]["status"],
        "FAILED"
    );

    let off = app
        .as_store(Method::POST, &format!("/connectors/{id}/deactivate"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(off.status(), 200);
    fake.clear_calls();
    let accepted: Value = app
        .post_event(&event("product.updated", STORE, product("B")))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(accepted["connectorJobIds"], json!([]));
    app.clock.set(t0() + Minutes::hours(3));
    worker.run_pending_jobs().await.expect("run");
    assert!(
        fake.calls().is_empty(),
        "nothing reached the channel: {:?}",
        fake.calls()
    );
    let jobs = get(&app, &format!("/connectors/{id}/jobs")).await;
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(jobs["items"][0]["status"], "CANCELLED");
    // Other stores' events never reach it either.
    let other: Value = app
        .post_event(&event("product.updated", "store-other", product("C")))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(other["connectorJobIds"], json!([]));
}

/// An API-only test app on the real clock, and the environment of worker processes sharing its database.
async fn app_for_processes(
    max_inline_wait_ms: u64,
    fake: &FakeChannels,
) -> (TestApp, BTreeMap<String, String>) {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    fake.configure(&mut config);
    config.connectors.max_inline_wait_ms = max_inline_wait_ms;
    let key = config.secrets.master_key.expose().to_owned();
    let url = db.url.clone();
    // The API schedules polls by the same (real) clock as the worker processes.
    let clock = jobs::ManualClock::new(t0());
    let app = TestApp::spawn_with_clock(
        std::sync::Arc::new(db),
        config,
        Roles::API,
        clock,
        std::sync::Arc::new(jobs::SystemClock),
    )
    .await;
    let env: BTreeMap<String, String> = [
        ("DATABASE_URL", url),
        ("SS3_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("SS3_SECRETS__MASTER_KEY", key),
        ("SS3_WORKER__POLL_INTERVAL_MS", "50".into()),
        ("SS3_WORKER__HEARTBEAT_INTERVAL_SECS", "1".into()),
        (
            "SS3_CONNECTORS__MAX_INLINE_WAIT_MS",
            max_inline_wait_ms.to_string(),
        ),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(fake.env())
    .collect();
    (app, env)
}

/// Catches: two worker processes running the same poll, or polling more than once per interval.
#[tokio::test]
async fn two_worker_processes_never_run_the_same_poll_twice() {
    let fake = FakeChannels::start().await;
    let (app, env) = app_for_processes(5000, &fake).await;
    fake.add_order("113-9", "2026-11-20T10:00:00Z");
    let mut w1 = ServiceProcess::spawn("worker", &env, "poll-worker-1");
    let mut w2 = ServiceProcess::spawn("worker", &env, "poll-worker-2");
    let id = create_id(&app, &amazon_body(1)).await;
    // The behaviour under test is what two workers do over time: let them run for more than one poll interval.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Graceful stop: a poll in flight finishes and is written, so every request to the fake has its log row.
    let (stopped_1, stopped_2) = tokio::task::spawn_blocking(move || {
        (
            w1.terminate(Duration::from_secs(20)),
            w2.terminate(Duration::from_secs(20)),
        )
    })
    .await
    .expect("join");
    assert!(stopped_1 && stopped_2, "workers drained and exited");

    let first_pages: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/v0/orders")
        .collect();
    let runs = sync_log(&app, &id, "direction=INBOUND&limit=200").await;
    assert!(runs.len() >= 3, "polls ran every second: {}", runs.len());
    assert!(
        runs.len() <= 7,
        "at most one poll per 1 s interval in 6 s: {}",
        runs.len()
    );
    assert_eq!(
        first_pages.len(),
        runs.len(),
        "every request belongs to exactly one logged poll"
    );
    let mut seqs: Vec<i64> = runs.iter().filter_map(|r| r["pollSeq"].as_i64()).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), runs.len(), "no poll number ran twice");
    let workers: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|r| r["worker"].as_str()).collect();
    for pair in first_pages.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "two polls {gap:?} apart (workers {workers:?})"
        );
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE payload->>'eventType' = 'marketplace.order.received'"
        )
        .await,
        1
    );
}

/// Catches: connector credentials written anywhere but Vault's documented paths, or read from elsewhere.
#[tokio::test]
async fn with_vault_connector_credentials_live_in_vault_and_the_adapter_uses_them() {
    use crate::common::vault::{read_raw, shared, use_vault};
    let (addr, token) = shared();
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    use_vault(&mut config, &addr, &token, &prefix);
    let fake = FakeChannels::start().await;
    fake.configure(&mut config);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let id = create_id(&app, &amazon_body(0)).await;
    for (field, value) in [
        ("api-key", AMAZON_CLIENT_ID),
        ("api-secret", AMAZON_CLIENT_SECRET),
        ("refresh-token", AMAZON_REFRESH_TOKEN),
    ] {
        assert_eq!(
            read_raw(&addr, &token, &format!("{prefix}/connector/{id}/{field}")).await,
            value,
            "{field}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM encrypted_secrets").await,
        0,
        "nothing in the embedded store"
    );
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "A", "quantity": 1}),
    ))
    .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    assert_eq!(
        fake.token_calls().len(),
        1,
        "the LWA exchange used the credentials read from Vault"
    );
    assert_eq!(fake.api_calls().len(), 1);
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
    config.kafka.publish_topic = publish;
    config.connectors.inbound_topic = inbound.clone();
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
    assert_eq!(patch.json()["patches"][0]["value"][0]["quantity"], 4);
}

/// Catches: a config's rate limit not enforced, or jobs waiting for it counted as failed attempts (a backlog
/// larger than the limit would otherwise dead-letter work the channel never refused).
#[tokio::test]
async fn a_configs_rate_limit_paces_its_calls_and_waiting_jobs_use_no_attempts() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.connectors.max_inline_wait_ms = 100;
    let fake = FakeChannels::start().await;
    fake.configure(&mut config);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let id = rate_limited_backlog(&app, 2.0, 4).await;
    let worker = app.worker("w").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        worker.run_pending_jobs().await.expect("run");
        let jobs = get(&app, &format!("/connectors/{id}/jobs")).await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if jobs.iter().all(|j| j["status"] == "SUCCEEDED") {
            assert!(
                jobs.iter().all(|j| j["attemptNumber"] == 1),
                "waiting counted as attempts: {jobs:?}"
            );
            break;
        }
        assert!(
            jobs.iter()
                .all(|j| j["status"] != "FAILED" && j["status"] != "DEAD_LETTERED"),
            "{jobs:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs never finished: {jobs:?}"
        );
        crate::common::wait::pause().await;
    }
    let mut calls = fake.calls();
    calls.sort_by_key(|c| c.at);
    assert_eq!(
        calls.len(),
        5,
        "one LWA exchange and four PATCHes, nothing repeated"
    );
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(450),
            "calls {gap:?} apart at 2 per second"
        );
    }
}

/// Catches: bad setup accepted, or refused without a stable problem code.
#[tokio::test]
async fn bad_connector_requests_get_problem_json_with_stable_codes() {
    let (app, _fake) = app_with_fake().await;
    let post = |body: Value| {
        app.as_store(Method::POST, "/connectors", STORE)
            .json(&body)
            .send()
    };
    let code = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let p: Value = r.json().await.expect("problem json");
        (status, p["code"].as_str().unwrap_or_default().to_owned())
    };
    let mut unknown = ebay_body();
    unknown["connectorType"] = json!("shopify");
    assert_eq!(
        code(post(unknown).await.expect("req")).await,
        (422, "unknown_connector_type".into())
    );
    let mut unsupported = ebay_body();
    unsupported["eventSubscriptions"] = json!(["order.fulfilled"]);
    assert_eq!(
        code(post(unsupported).await.expect("req")).await,
        (422, "unsupported_event".into())
    );
    let mut no_seller = amazon_body(0);
    no_seller["settings"]
        .as_object_mut()
        .expect("object")
        .remove("sellerId");
    assert_eq!(
        code(post(no_seller).await.expect("req")).await,
        (422, "invalid_settings".into())
    );
    let mut polling_google = google_body();
    polling_google["pollIntervalSecs"] = json!(60);
    assert_eq!(
        code(post(polling_google).await.expect("req")).await,
        (422, "connector_does_not_poll".into())
    );
    let mut half = amazon_body(0);
    half["credentials"] = json!({"apiKey": "only"});
    assert_eq!(
        code(post(half).await.expect("req")).await,
        (422, "credentials_incomplete".into())
    );

    let google = create_id(&app, &google_body()).await;
    let poll = app
        .as_store(Method::POST, &format!("/connectors/{google}/poll"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(code(poll).await, (409, "poll_not_possible".into()));
    let missing = app
        .as_store(
            Method::GET,
            &format!("/connectors/{}", uuid::Uuid::new_v4()),
            STORE,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(code(missing).await, (404, "connector_not_found".into()));
    let other_store = app
        .as_store(Method::GET, &format!("/connectors/{google}"), "store-other")
        .send()
        .await
        .expect("req");
    assert_eq!(
        other_store.status(),
        404,
        "a config is only visible to its store"
    );
    app.post_event(&event("product.updated", STORE, product("G-1")))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let job = get(&app, &format!("/connectors/{google}/jobs")).await["items"][0]["jobId"]
        .as_str()
        .expect("job")
        .to_owned();
    let retrigger = app
        .as_store(
            Method::POST,
            &format!("/connectors/{google}/jobs/{job}/retrigger"),
            STORE,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(code(retrigger).await, (409, "job_not_retriggerable".into()));

    // A store's own API key, even with every scope, cannot manage connectors.
    let created: Value = app
        .as_store(Method::POST, "/credentials", STORE)
        .json(&json!({"name": "app", "type": "API_KEY", "scopes": ["catalog:read", "webhooks:manage"]}))
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    let key = created["apiKey"].as_str().expect("key");
    let denied = app
        .http
        .get(app.url("/connectors"))
        .bearer_auth(key)
        .send()
        .await
        .expect("req");
    assert_eq!(code(denied).await, (403, "operator_only".into()));
}

/// Catches: a refusal no retry can fix being retried for hours, an expired token never renewed, a failed poll
/// losing its cursor or its schedule, and "test connection" hiding why it failed.
#[tokio::test]
async fn refusals_dead_letter_at_once_expired_tokens_are_renewed_and_failed_polls_keep_their_cursor()
 {
    let (app, fake) = app_with_fake().await;
    let worker = app.worker("w").await;

    // 400 from Amazon: the listing itself is wrong; dead-lettered after one attempt.
    let amazon = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 400, None);
    app.post_event(&event("product.updated", STORE, product("BAD")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let job = get(&app, &format!("/connectors/{amazon}/jobs")).await["items"][0].clone();
    assert_eq!(
        (job["status"].as_str(), job["attemptNumber"].as_i64()),
        (Some("DEAD_LETTERED"), Some(1)),
        "{job}"
    );

    // 401 from eBay: the cached token is dropped, the attempt is retried, and the retry fetches a new token.
    let ebay = create_id(&app, &ebay_body()).await;
    fake.clear_calls();
    fake.fail("/sell/", 1, 401, None);
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "E-1", "quantity": 1}),
    ))
    .await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(
        get(&app, &format!("/connectors/{ebay}/jobs")).await["items"][0]["status"],
        "FAILED"
    );
    app.clock.set(t0() + Minutes::minutes(1));
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(
        get(&app, &format!("/connectors/{ebay}/jobs")).await["items"][0]["status"],
        "SUCCEEDED"
    );
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.path == "/identity/v1/oauth2/token")
            .count(),
        2,
        "a new token after the 401"
    );

    // A failed poll is logged, keeps its cursor, and the next poll is still scheduled.
    fake.add_order("113-P", "2026-11-20T10:00:00Z");
    let polling = create_id(&app, &amazon_body(600)).await;
    fake.fail("/orders/v0/orders", 1, 503, None);
    worker.run_pending_jobs().await.expect("run");
    let failed = sync_log(&app, &polling, "direction=INBOUND").await;
    assert_eq!(failed[0]["status"], "FAILED");
    assert!(
        failed[0]["errorSummary"]
            .as_str()
            .unwrap_or("")
            .contains("503"),
        "{failed:?}"
    );
    let config = get(&app, &format!("/connectors/{polling}")).await;
    assert_eq!(config["pollCursor"], Value::Null, "the cursor did not move");
    let next: chrono::DateTime<chrono::Utc> = config["nextPollAt"]
        .as_str()
        .expect("next poll")
        .parse()
        .expect("time");
    app.clock.set(next);
    worker.run_pending_jobs().await.expect("run");
    let runs = sync_log(&app, &polling, "direction=INBOUND").await;
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["recordCount"].as_i64()),
        (Some("SUCCEEDED"), Some(1)),
        "{runs:?}"
    );

    // Test connection with credentials the channel refuses says so.
    let replaced = app
        .as_store(Method::PUT, &format!("/connectors/{ebay}/credentials"), STORE)
        .json(&json!({"apiKey": EBAY_CLIENT_ID, "apiSecret": "wrong", "refreshToken": EBAY_REFRESH_TOKEN}))
        .send()
        .await
        .expect("req");
    assert_eq!(replaced.status(), 204);
    let tested: Value = app
        .as_store(Method::POST, &format!("/connectors/{ebay}/test"), STORE)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(tested["ok"], false);
    assert!(
        tested["detail"]
            .as_str()
            .unwrap_or("")
            .contains("refused the credentials"),
        "{tested}"
    );
}

/// Catches: a config's rate limit applied per process, so N workers call the channel N times too fast.
#[tokio::test]
async fn two_worker_processes_share_one_rate_limit_per_config() {
    let fake = FakeChannels::start().await;
    let (app, env) = app_for_processes(200, &fake).await;
    let id = rate_limited_backlog(&app, 4.0, 10).await;
    let _w1 = ServiceProcess::spawn("worker", &env, "rate-worker-1");
    let _w2 = ServiceProcess::spawn("worker", &env, "rate-worker-2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = get(&app, &format!("/connectors/{id}/jobs")).await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if jobs.len() == 10 && jobs.iter().all(|j| j["status"] == "SUCCEEDED") {
            assert!(jobs.iter().all(|j| j["attemptNumber"] == 1), "{jobs:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs never finished: {jobs:?}"
        );
        crate::common::wait::pause().await;
    }
    let mut calls = fake.calls();
    calls.sort_by_key(|c| c.at);
    let patches = calls.iter().filter(|c| c.method == "PATCH").count();
    assert_eq!(patches, 10, "each SKU once");
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(200),
            "two calls {gap:?} apart at 4 per second across both processes"
        );
    }
    let log = sync_log(&app, &id, "limit=200").await;
    let workers: std::collections::BTreeSet<&str> =
        log.iter().filter_map(|r| r["worker"].as_str()).collect();
    eprintln!(
        "jobs ran on {} worker process(es): {workers:?}",
        workers.len()
    );
}
