use serde_json::json;
use workflows::catalog::{fulfillment, listings};

use super::*;

const M: Marketplace<'static> = Marketplace {
    marketplace_id: "ATVPDKIKX0DER",
    language_tag: "en_US",
};

fn shoes() -> ProductTypeDefinition {
    ProductTypeDefinition::from_schema(&json!({"required": ["item_name", "brand", "size"],
        "properties": {"item_name": {}, "brand": {}, "size": {}, "color": {}}}))
}

#[test]
fn a_listing_of_a_configured_product_type_is_a_full_listing_with_the_attributes_the_type_defines() {
    let l = listings(&json!({"sku": "TS-42", "title": "Trail Shoe", "brand": "Acme", "gtin": "4006381333931",
        "imageUrls": ["https://img/1.jpg"], "price": {"amount": "89.90", "currency": "USD"}, "quantity": 7,
        "variants": [{"sku": "TS-42", "quantity": 7, "attributes": {"Size": "42", "Material": "mesh"}}]}))
    .expect("valid");
    let kind = listing_kind(&l[0], Some("SHOES")).expect("kind");
    assert_eq!(kind, ListingKind::Product("SHOES"));
    let body = listing_put_body(&l[0], &M, &kind, Some(&shoes()), None);
    assert_eq!(
        (body["productType"].as_str(), body["requirements"].as_str()),
        (Some("SHOES"), Some("LISTING"))
    );
    let a = &body["attributes"];
    assert_eq!(a["item_name"][0]["value"], "Trail Shoe");
    assert_eq!(a["size"][0]["value"], "42");
    assert!(a.get("material").is_none(), "SHOES defines no material");
    assert_eq!(
        a["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"],
        89.9
    );
    assert_eq!(a["fulfillment_availability"][0]["quantity"], 7);
    assert_eq!(a["condition_type"][0]["value"], "new_new");
    assert!(missing_attributes(&body, &shoes()).is_empty());
}

#[test]
fn missing_required_attributes_are_named() {
    let l = listings(&json!({"sku": "A", "title": "T"})).expect("valid");
    let body = listing_put_body(
        &l[0],
        &M,
        &ListingKind::Product("SHOES"),
        Some(&shoes()),
        None,
    );
    assert_eq!(missing_attributes(&body, &shoes()), vec!["brand", "size"]);
}

#[test]
fn without_a_product_type_an_asin_or_gtin_makes_an_offer_only_listing_and_nothing_is_an_error() {
    let by_asin = listings(&json!({"title": "T", "variants": [{"sku": "A", "gtin": "1",
        "attributes": {"ASIN": "B0X", "size": "4"}}]}))
    .expect("valid");
    assert_eq!(
        by_asin[0].attributes,
        vec![("size".to_owned(), "4".to_owned())],
        "the ASIN is no attribute of the item"
    );
    assert_eq!(
        listing_kind(&by_asin[0], Some("SHOES")),
        Ok(ListingKind::Offer)
    );
    let body = listing_put_body(&by_asin[0], &M, &ListingKind::Offer, None, None);
    assert_eq!(body["productType"], "PRODUCT");
    assert_eq!(body["requirements"], "LISTING_OFFER_ONLY");
    assert_eq!(
        body["attributes"]["merchant_suggested_asin"][0]["value"],
        "B0X"
    );
    assert!(
        body["attributes"].get("item_name").is_none(),
        "no product facts in an offer"
    );

    let by_ean =
        listings(&json!({"sku": "B", "title": "T", "gtin": "4006381333931"})).expect("valid");
    assert_eq!(
        listing_kind(&by_ean[0], Some("PRODUCT")),
        Ok(ListingKind::Offer)
    );
    let mut matched = by_ean[0].clone();
    matched.asin = Some("B0TRAIL042".into()); // what the catalog search found for the EAN
    let body = listing_put_body(&matched, &M, &ListingKind::Offer, None, None);
    assert_eq!(
        body["attributes"]["merchant_suggested_asin"][0]["value"],
        "B0TRAIL042"
    );

    let neither =
        listings(&json!({"sku": "C", "title": "T", "categoryIds": ["shoes"]})).expect("valid");
    let e = listing_kind(&neither[0], None).expect_err("nothing to list it as");
    assert!(
        e.detail.contains("C") && e.detail.contains("[\"shoes\"]"),
        "{}",
        e.detail
    );
}

#[test]
fn a_put_restates_the_current_availability_with_the_new_quantity_or_as_it_is() {
    let current = json!([{"fulfillment_channel_code": "DEFAULT", "quantity": 4, "lead_time_to_ship_max_days": 3}]);
    let without = listings(&json!({"sku": "A", "title": "T", "gtin": "1"})).expect("valid");
    let body = listing_put_body(&without[0], &M, &ListingKind::Offer, None, Some(&current));
    assert_eq!(body["attributes"]["fulfillment_availability"], current);
    let with =
        listings(&json!({"sku": "A", "title": "T", "gtin": "1", "quantity": 9})).expect("valid");
    let body = listing_put_body(&with[0], &M, &ListingKind::Offer, None, Some(&current));
    assert_eq!(
        body["attributes"]["fulfillment_availability"],
        json!([{"fulfillment_channel_code": "DEFAULT", "quantity": 9, "lead_time_to_ship_max_days": 3}])
    );
    let archived = listings(
        &json!({"sku": "A", "title": "T", "gtin": "1", "status": "ARCHIVED", "quantity": 5}),
    )
    .expect("valid");
    let body = listing_put_body(&archived[0], &M, &ListingKind::Offer, None, None);
    assert_eq!(
        body["attributes"]["fulfillment_availability"][0]["quantity"],
        0
    );
}

#[test]
fn quantity_patch_merges_fulfillment_availability() {
    let body = inventory_patch_body(3);
    assert_eq!(body["productType"], "PRODUCT");
    assert_eq!(body["patches"][0]["op"], "merge");
    assert_eq!(
        body["patches"][0]["path"],
        "/attributes/fulfillment_availability"
    );
    assert_eq!(body["patches"][0]["value"][0]["quantity"], 3);
}

#[test]
fn package_reference_ids_are_positive_numbers_stable_per_fulfillment() {
    let a = package_reference_id("113-1", "f-1");
    assert_eq!(a, package_reference_id("113-1", "f-1"));
    assert_ne!(a, package_reference_id("113-1", "f-2"));
    let n: u64 = a.parse().expect("numeric");
    assert!((1..=2_147_483_647).contains(&n));
}

#[test]
fn carriers_map_to_amazon_codes_or_other_with_a_name() {
    assert_eq!(carrier("ups"), ("UPS", None));
    assert_eq!(carrier("Royal-Mail"), ("Royal Mail", None));
    assert_eq!(carrier("Acme Freight"), ("Other", Some("Acme Freight")));
}

#[test]
fn shipment_confirmation_needs_an_amazon_order() {
    let mut data = json!({"orderId": "o1", "fulfillmentId": "f-1", "carrier": "Acme Freight", "trackingNumber": "1Z",
        "shippedAt": "2026-11-20T10:00:00Z", "channel": {"connector": "amazon", "externalOrderId": "113-1"},
        "items": [{"externalItemId": "i1", "quantity": 2}]});
    let (order, body) = shipment_confirmation_body(&fulfillment(&data).expect("ok"), "MP")
        .expect("ok")
        .expect("amazon");
    assert_eq!(order, "113-1");
    let p = &body["packageDetail"];
    assert_eq!(
        p["orderItems"][0],
        json!({"orderItemId": "i1", "quantity": 2})
    );
    assert_eq!(p["shipDate"], "2026-11-20T10:00:00Z");
    assert_eq!(
        p["packageReferenceId"],
        package_reference_id("113-1", "f-1")
    );
    assert_eq!(
        (p["carrierCode"].as_str(), p["carrierName"].as_str()),
        (Some("Other"), Some("Acme Freight"))
    );
    data["channel"]["connector"] = json!("ebay");
    assert_eq!(
        shipment_confirmation_body(&fulfillment(&data).expect("ok"), "MP").expect("ok"),
        None
    );
    data["channel"]["connector"] = json!("amazon");
    data["items"][0] = json!({"sku": "A", "quantity": 1});
    assert!(shipment_confirmation_body(&fulfillment(&data).expect("ok"), "MP").is_err());
}

#[test]
fn orders_become_event_data_once_per_status() {
    let order = json!({"orderId": "113-2", "createdTime": "2026-11-20T10:00:00Z", "lastUpdatedTime": "2026-11-20T11:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER"},
        "fulfillment": {"fulfillmentStatus": "PENDING", "fulfilledBy": "MERCHANT"},
        "proceeds": {"grandTotal": {"amount": "10.00", "currencyCode": "USD"}},
        "orderItems": [{"orderItemId": "1", "quantityOrdered": 2, "product": {}, "fulfillment": {"quantityUnfulfilled": 2}}]});
    let (id, data) = order_event_data(&order, "cfg").expect("has id");
    assert_eq!(id, "113-2/PENDING");
    assert_eq!(data["externalOrderId"], "113-2");
    assert_eq!(data["total"], json!({"amount": "10.00", "currency": "USD"}));
    assert_eq!(
        (data["status"].as_str(), data["itemsUnshipped"].as_i64()),
        (Some("PENDING"), Some(2))
    );
    assert_eq!(order_event_data(&json!({}), "cfg"), None);
}
