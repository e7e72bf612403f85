//! The contracts the real services enforce, against a fake that enforces them too (bodies checked against the
//! published schemas, Amazon's `INVALID` issues, eBay's published offers and quantity levels, Google's project
//! registration). Each test would have caught one of the refusals of issue 14 (see docs/connectors.md).

use super::*;

/// Every body the fake received conformed to its published contract.
fn assert_no_violations(fake: &FakeChannels) {
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The last error of the config's dead-lettered jobs, newest first.
async fn dead_letters(app: &TestApp, id: &str) -> Vec<String> {
    let dead = jobs(app, id, "status=DEAD_LETTERED").await;
    dead.into_iter().filter_map(|j| j.last_error).collect()
}

fn shoe(sku: &str, attributes: Value) -> Value {
    json!({"productId": "p-9", "title": "Road Shoe", "brand": "Acme", "categoryIds": ["cat-other", "cat-running"],
           "price": {"amount": "99.00", "currency": "USD"},
           "variants": [{"sku": sku, "quantity": 3, "attributes": attributes}]})
}

/// Catches (issue 14, 1): listings sent as `productType: PRODUCT` with `requirements: LISTING`, which Amazon refuses
/// (4000004); a product type's required attributes not checked; no clear error when nothing can be listed.
#[tokio::test]
async fn amazon_listings_are_offers_on_catalog_items_or_full_listings_of_a_configured_product_type()
{
    let (app, fake) = app_with_fake().await;
    fake.add_product_type("SHOES", &["item_name", "brand", "size"]);
    let mut body = amazon_body(0);
    body["settings"]["productTypes"] = json!({"cat-running": "SHOES"});
    let id = create_id(&app, &body).await;
    let worker = app.worker("w").await;

    // Default settings, a GTIN Amazon's catalog knows: an offer on that item.
    app.post_event(&event("product.updated", STORE, product("TS-42")))
        .await;
    // A mapped category with every attribute SHOES requires: a full listing.
    app.post_event(&event(
        "product.updated",
        STORE,
        shoe("RS-1", json!({"Size": "42"})),
    ))
    .await;
    // The same without a size: refused before any call, naming the attribute.
    app.post_event(&event("product.updated", STORE, shoe("RS-2", json!({}))))
        .await;
    // Neither a product type nor an ASIN or GTIN.
    app.post_event(&event(
        "product.updated",
        STORE,
        json!({"sku": "N-1", "title": "Mystery"}),
    ))
    .await;
    // A GTIN Amazon's catalog does not have, and no product type.
    app.post_event(&event(
        "product.updated",
        STORE,
        json!({"sku": "N-2", "title": "Unknown", "gtin": "0000000000017"}),
    ))
    .await;
    worker.run_pending_jobs().await.expect("run");

    let puts: Vec<Call> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.method == "PUT")
        .collect();
    let offer = puts
        .iter()
        .find(|c| c.path.ends_with("/TS-42"))
        .expect("offer put")
        .json();
    assert_eq!(
        (
            offer["productType"].as_str(),
            offer["requirements"].as_str()
        ),
        (Some("PRODUCT"), Some("LISTING_OFFER_ONLY"))
    );
    assert_eq!(
        offer["attributes"]["merchant_suggested_asin"][0]["value"],
        CATALOG_ASIN
    );
    // The jobs run concurrently: find TS-42's search among both products' searches.
    let search = fake
        .api_calls()
        .into_iter()
        .find(|c| {
            c.path == "/catalog/2022-04-01/items"
                && c.param("identifiers").as_deref() == Some(CATALOG_EAN)
        })
        .expect("catalog search by the product's EAN");
    assert_eq!(
        (
            search.param("identifiers").as_deref(),
            search.param("identifiersType").as_deref()
        ),
        (Some(CATALOG_EAN), Some("EAN"))
    );
    let full = puts
        .iter()
        .find(|c| c.path.ends_with("/RS-1"))
        .expect("full put")
        .json();
    assert_eq!(
        (full["productType"].as_str(), full["requirements"].as_str()),
        (Some("SHOES"), Some("LISTING"))
    );
    assert_eq!(full["attributes"]["size"][0]["value"], "42");
    assert!(fake.amazon_listing("TS-42").is_some() && fake.amazon_listing("RS-1").is_some());
    assert!(
        !puts
            .iter()
            .any(|c| c.path.ends_with("/RS-2") || c.path.contains("/N-"))
    );
    let definitions = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/definitions/"))
        .count();
    assert_eq!(
        definitions, 1,
        "the SHOES definition is fetched once and cached"
    );

    let errors = dead_letters(&app, &id).await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no item with EAN 0000000000017") && e.contains("N-2")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("SHOES requires attributes size") && e.contains("RS-2")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("N-1") && e.contains("no ASIN or GTIN")),
        "{errors:?}"
    );
    assert_eq!(sync_log(&app, &id, "status=SUCCEEDED").await.len(), 2);
    assert_no_violations(&fake);
}

/// Catches (issue 14, 2): the platform's fulfillment id sent as `packageReferenceId` (Amazon accepts positive
/// numbers only), a corrected shipment creating a second package, `Other` carriers without `carrierName`.
#[tokio::test]
async fn amazon_shipments_get_a_stable_numeric_package_id_and_other_carriers_are_named() {
    let (app, fake) = app_with_fake().await;
    fake.add_order("113-7", "2026-11-20T10:00:00Z");
    let id = create_id(&app, &amazon_body(0)).await;
    let worker = app.worker("w").await;
    let mut data = fulfilled("113-7");
    data["carrier"] = json!("Acme Freight");
    app.post_event(&event("order.fulfilled", STORE, data.clone()))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let confirm = |fake: &FakeChannels| -> Vec<Value> {
        let calls = fake.api_calls().into_iter();
        calls
            .filter(|c| c.path.ends_with("/shipmentConfirmation"))
            .map(|c| c.json())
            .collect()
    };
    let first = confirm(&fake);
    assert_eq!(first.len(), 1);
    let package = &first[0]["packageDetail"];
    let reference = package["packageReferenceId"]
        .as_str()
        .expect("string")
        .to_owned();
    assert!(reference.parse::<u32>().is_ok_and(|n| n > 0), "{reference}");
    assert_eq!(
        (
            package["carrierCode"].as_str(),
            package["carrierName"].as_str()
        ),
        (Some("Other"), Some("Acme Freight"))
    );

    // The platform corrects the tracking number of the same fulfillment: the same package is edited.
    data["trackingNumber"] = json!("AF-2");
    app.post_event(&event("order.fulfilled", STORE, data.clone()))
        .await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(
        confirm(&fake)[1]["packageDetail"]["packageReferenceId"],
        reference.as_str()
    );
    let order = fake.amazon_order("113-7").expect("order");
    assert_eq!(
        order["packages"].as_array().map(Vec::len),
        Some(1),
        "{order}"
    );
    assert_eq!(order["packages"][0]["trackingNumber"], "AF-2");

    // Re-sent unchanged: already confirmed, nothing posted.
    app.post_event(&event("order.fulfilled", STORE, data)).await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(confirm(&fake).len(), 2);
    let skipped = sync_log(&app, &id, "status=SKIPPED").await;
    assert!(
        skipped[0]
            .error_summary
            .as_deref()
            .unwrap_or("")
            .contains("already confirmed"),
        "{skipped:?}"
    );
    assert_eq!(sync_log(&app, &id, "status=SUCCEEDED").await.len(), 2);
    assert_no_violations(&fake);
}

/// Published `marketplace.order.received` events of `STORE`, as `(externalOrderId, status)`.
async fn published_orders(app: &TestApp) -> Vec<(String, String)> {
    let published: Vec<(Value,)> =
        sqlx::query_as("SELECT payload FROM outbox_messages ORDER BY outbox_id, position")
            .fetch_all(&app.pool)
            .await
            .expect("outbox");
    let field = |p: &Value, f: &str| p["data"][f].as_str().unwrap_or("").to_owned();
    published
        .iter()
        .map(|(p,)| (field(p, "externalOrderId"), field(p, "status")))
        .collect()
}

/// Catches (issue 14, 3 and the 429 one): polls on the deprecated Orders API v0; an order published once and never
/// again when its status changes; a 429 halfway through a walk throwing the pages read away.
#[tokio::test]
async fn amazon_orders_come_from_orders_api_v2026_once_per_status_and_a_429_keeps_the_pages_read() {
    let (app, fake) = app_with_fake().await;
    fake.add_order("113-1", "2026-11-20T10:00:00Z");
    fake.set_order_status("113-1", "PENDING", "2026-11-20T10:00:00Z");
    fake.add_order("113-2", "2026-11-21T11:00:00Z");
    fake.add_order("113-3", "2026-11-22T12:00:00Z");
    fake.fail("paginationToken=", 1, 429, None); // Amazon's bare 429, on the second page
    let id = create_id(&app, &amazon_body(600)).await;
    let worker = app.worker("w").await;
    worker.run_pending_jobs().await.expect("first poll");
    let searches: Vec<Call> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.path == "/orders/2026-01-01/orders")
        .collect();
    assert_eq!(searches.len(), 2);
    assert_eq!(
        searches[0].param("lastUpdatedAfter").as_deref(),
        Some("2026-11-01T00:00:00Z")
    );
    assert_eq!(
        searches[0].param("includedData").as_deref(),
        Some("PROCEEDS,FULFILLMENT")
    );
    assert!(
        !fake
            .api_calls()
            .iter()
            .any(|c| c.path.starts_with("/orders/v0/orders") && c.method == "GET")
    );
    let pending = vec![
        ("113-1".to_owned(), "PENDING".to_owned()),
        ("113-2".to_owned(), "UNSHIPPED".to_owned()),
    ];
    assert_eq!(
        published_orders(&app).await,
        pending,
        "the first page is kept"
    );
    let cursor = app
        .api()
        .connector(STORE, &id)
        .await
        .poll_cursor
        .expect("cursor");
    assert!(
        cursor.ends_with("|2~lastUpdatedTime=2026-11-01T00:00:00Z"),
        "the walk goes on from page 2: {cursor}"
    );

    // searchOrders' plan (0.0056/s) allows the next call ~3 minutes after the 429: let that time pass.
    sqlx::query("DELETE FROM rate_limits WHERE bucket = 'searchOrders'")
        .execute(&app.pool)
        .await
        .expect("pass time");
    poll_now(&app, &id, &worker).await;
    let last = fake
        .api_calls()
        .into_iter()
        .rfind(|c| c.path == "/orders/2026-01-01/orders")
        .expect("search");
    assert_eq!(
        last.param("paginationToken").as_deref(),
        Some("2~lastUpdatedTime=2026-11-01T00:00:00Z")
    );
    assert_eq!(published_orders(&app).await.len(), 3);
    let after = app.api().connector(STORE, &id).await;
    assert_eq!(after.poll_cursor.as_deref(), Some("2026-11-22T12:00:00Z"));

    // 113-1 leaves PENDING: published again, with its new status; nothing else is new.
    fake.set_order_status("113-1", "UNSHIPPED", "2026-11-23T08:00:00Z");
    poll_now(&app, &id, &worker).await;
    let orders = published_orders(&app).await;
    assert_eq!(orders.len(), 4, "{orders:?}");
    assert_eq!(orders[3], ("113-1".to_owned(), "UNSHIPPED".to_owned()));
    assert_no_violations(&fake);
}

async fn poll_now(app: &TestApp, id: &str, worker: &jobs::worker::Worker) {
    let queued = app
        .as_store(Method::POST, &format!("/connectors/{id}/poll"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(queued.status(), 202);
    worker.run_pending_jobs().await.expect("poll");
}

/// Catches (issue 14, 4): prices sent to unpublished offers, which `bulkUpdatePriceQuantity` refuses, failing the
/// whole sync.
#[tokio::test]
async fn ebay_prices_go_to_published_offers_and_unpublished_ones_are_reported() {
    let (app, fake) = app_with_fake().await;
    fake.add_offer("TS-42", "5001", true, None);
    fake.add_offer("TS-42", "5002", false, None);
    let id = create_id(&app, &ebay_body()).await;
    app.post_event(&event("product.updated", STORE, product("TS-42")))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    assert_eq!(
        fake.ebay_offer_price("TS-42", "5001"),
        Some(json!({"value": "89.90", "currency": "USD"}))
    );
    let log = sync_log(&app, &id, "").await;
    assert_eq!(log[0].status, "SUCCEEDED", "{log:?}");
    let note = log[0].error_summary.as_deref().unwrap_or("");
    assert!(
        note.contains("unpublished") && note.contains("TS-42 (offer 5002)"),
        "{note}"
    );
    assert_no_violations(&fake);
}

/// Catches (issue 14, 5): stock changes sent to the inventory item only, while the listing shows the smaller of
/// the item's and the offer's quantity.
#[tokio::test]
async fn ebay_stock_changes_reach_listings_whose_offer_has_its_own_quantity() {
    let (app, fake) = app_with_fake().await;
    fake.set_inventory_item("TS-42", 7);
    fake.add_offer("TS-42", "5001", true, Some(7));
    create(&app, &ebay_body()).await;
    let worker = app.worker("w").await;
    for quantity in [20, 2] {
        app.post_event(&event(
            "inventory.updated",
            STORE,
            json!({"sku": "TS-42", "quantity": quantity}),
        ))
        .await;
        worker.run_pending_jobs().await.expect("run");
        assert_eq!(fake.ebay_listed_quantity("TS-42"), Some(quantity));
    }
    assert_no_violations(&fake);
}

/// Catches (issue 14, 6): every Merchant API call refused until the Cloud project is registered, with no way to
/// register it and an error that does not say why.
#[tokio::test]
async fn google_test_connection_registers_the_cloud_project_and_calls_before_fail_saying_so() {
    let (app, fake) = app_with_fake().await;
    let id = create_id(&app, &google_body()).await;
    let worker = app.worker("w").await;
    app.post_event(&event("product.updated", STORE, product("TS-42")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let errors = dead_letters(&app, &id).await;
    assert!(
        errors.len() == 1
            && errors[0].contains("not registered")
            && errors[0].contains("developerEmail"),
        "{errors:?}"
    );
    let test = |app: &TestApp| {
        let request = app.as_store(Method::POST, &format!("/connectors/{id}/test"), STORE);
        async move { request.json_answer::<Value>().await }
    };
    let tested = test(&app).await;
    assert_eq!(tested["ok"], false, "{tested}");

    let mut settings = google_body()["settings"].clone();
    settings["developerEmail"] = json!("ops@shop.example");
    let patched = app
        .as_store(Method::PATCH, &format!("/connectors/{id}"), STORE)
        .json(&json!({"settings": settings}))
        .send()
        .await
        .expect("req");
    assert_eq!(patched.status(), 200);
    let tested = test(&app).await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(
        fake.gcp_developer_email().as_deref(),
        Some("ops@shop.example")
    );

    let job = jobs(&app, &id, "status=DEAD_LETTERED")
        .await
        .remove(0)
        .job_id;
    let again = app
        .as_store(
            Method::POST,
            &format!("/connectors/{id}/jobs/{job}/retrigger"),
            STORE,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(again.status(), 200);
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(jobs(&app, &id, "").await[0].status, "SUCCEEDED");
    assert_no_violations(&fake);
}

/// Catches (issue 14, "also fix"): a full replacement without a quantity wiping the stock (Amazon `PUT`, eBay
/// create-or-replace), and a quantity update dropping Amazon's handling time.
#[tokio::test]
async fn replacements_without_a_quantity_keep_stock_and_quantity_updates_keep_the_handling_time() {
    let (app, fake) = app_with_fake().await;
    let availability = json!([{"fulfillment_channel_code": "DEFAULT", "quantity": 5, "lead_time_to_ship_max_days": 3}]);
    fake.set_amazon_listing(
        "TS-42",
        "PRODUCT",
        json!({"fulfillment_availability": availability}),
    );
    fake.set_inventory_item("TS-42", 6);
    fake.add_offer("TS-42", "5001", true, None);
    create(&app, &amazon_body(0)).await;
    create(&app, &ebay_body()).await;
    let worker = app.worker("w").await;
    let mut no_quantity = product("TS-42");
    no_quantity.as_object_mut().map(|p| p.remove("quantity"));
    app.post_event(&event("product.updated", STORE, no_quantity))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let amazon = fake.amazon_listing("TS-42").expect("listing");
    assert_eq!(
        amazon["attributes"]["fulfillment_availability"],
        availability
    );
    assert_eq!(fake.ebay_listed_quantity("TS-42"), Some(6));

    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "TS-42", "quantity": 9}),
    ))
    .await;
    worker.run_pending_jobs().await.expect("run");
    let amazon = fake.amazon_listing("TS-42").expect("listing");
    assert_eq!(
        amazon["attributes"]["fulfillment_availability"],
        json!([{"fulfillment_channel_code": "DEFAULT", "quantity": 9, "lead_time_to_ship_max_days": 3}])
    );
    assert_eq!(fake.ebay_listed_quantity("TS-42"), Some(9));
    assert_no_violations(&fake);
}
