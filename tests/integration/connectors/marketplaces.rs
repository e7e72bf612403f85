//! Each marketplace's exact calls per event: paths, query, auth, bodies, batching, and no repeated side effects.

use super::*;

/// Catches: wrong paths, query, auth header, LWA form, listing attributes, a shipment confirmed twice on retry.
#[tokio::test]
async fn amazon_events_make_exactly_the_listings_inventory_and_shipment_calls() {
    let (app, fake) = app_with_fake().await;
    fake.add_order("113-0000001", "2026-11-22T08:00:00Z");
    let config = create(&app, &amazon_body(0)).await;
    let id = config.config_id.to_string();
    assert_eq!(
        config.event_subscriptions,
        ["product.updated", "inventory.updated", "order.fulfilled"]
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
            "GET /catalog/2022-04-01/items",
            "GET /listings/2021-08-01/items/A2SELLER/TS-42",
            "GET /orders/2026-01-01/orders/113-0000001",
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
    // No product type configured: an offer on the catalog item the GTIN matches.
    assert_eq!(body["productType"], "PRODUCT");
    assert_eq!(body["requirements"], "LISTING_OFFER_ONLY");
    assert_eq!(
        body["attributes"]["merchant_suggested_asin"][0]["value"],
        CATALOG_ASIN
    );
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
    assert_eq!(patch.json()["patches"][0]["op"], "merge");
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
    assert_eq!(confirm.json()["packageDetail"]["carrierCode"], "UPS");
    assert_eq!(
        confirm.json()["packageDetail"]["packageReferenceId"],
        connectors::amazon::mapping::package_reference_id("113-0000001", "f-1")
    );

    let log = sync_log(&app, &id, "direction=OUTBOUND").await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.status == "SUCCEEDED"), "{log:?}");
    let mut records: Vec<(String, i64)> = log
        .iter()
        .map(|r| (r.entity_type.clone(), r.record_count))
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

    // The platform re-sends the fulfillment (new event id): Amazon already shows its package, so no second
    // confirmation is posted.
    fake.clear_calls();
    app.post_event(&event("order.fulfilled", STORE, fulfilled("113-0000001")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let lines: Vec<String> = fake.api_calls().iter().map(|c| c.line()).collect();
    assert_eq!(lines, vec!["GET /orders/2026-01-01/orders/113-0000001"]);
    let skipped = sync_log(&app, &id, "status=SKIPPED").await;
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]
            .error_summary
            .as_deref()
            .unwrap_or("")
            .contains("already confirmed")
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Catches: eBay calls not batched, wrong auth (Basic for the token, Bearer after), prices sent without offer ids.
#[tokio::test]
async fn ebay_events_use_bulk_inventory_calls_and_update_existing_offers() {
    let (app, fake) = app_with_fake().await;
    fake.set_offers("TS-42", &["5001"]);
    // On eBay already (the quantity update may run before the product update creates it).
    fake.set_inventory_item("TS-43", 0);
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
        3,
        "offers of both variants for prices, of TS-43 for its quantity"
    );
    assert_eq!(
        lines.iter().filter(|l| *l == bulk_price).count(),
        2,
        "one price update, one quantity update"
    );
    assert_eq!(calls.len(), 6);
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
    let log = sync_log(&app, &config.config_id.to_string(), "").await;
    assert_eq!(log.len(), 2, "the fulfillment was never fanned out to eBay");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Catches: an unsigned or wrongly-claimed JWT, a product input in the wrong shape or data source.
#[tokio::test]
async fn google_product_updates_insert_product_inputs_with_a_service_account_token() {
    let (app, fake) = app_with_fake().await;
    fake.register_gcp();
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
    assert_eq!(fake.violations(), Vec::<String>::new());
}
