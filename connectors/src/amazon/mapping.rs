//! Amazon Selling Partner API shapes: Listings Items API 2021-08-01 bodies, the Orders API v0 shipment
//! confirmation, and Orders API orders as platform events.

use serde_json::{Value, json};

use workflows::catalog::{Fulfillment, Listing, PayloadError};

/// Per-marketplace context of the listing attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marketplace<'a> {
    /// e.g. `ATVPDKIKX0DER`.
    pub marketplace_id: &'a str,
    /// e.g. `en_US`.
    pub language_tag: &'a str,
    /// Amazon product type of the listings (`PRODUCT` when the seller does not map categories).
    pub product_type: &'a str,
}

fn condition_type(condition: &str) -> &'static str {
    match condition {
        "used" => "used_good",
        "refurbished" => "refurbished_refurbished",
        _ => "new_new",
    }
}

/// `PUT /listings/2021-08-01/items/{sellerId}/{sku}` body: the full listing (create or replace, idempotent by SKU).
pub fn listing_put_body(l: &Listing, m: &Marketplace<'_>) -> Value {
    let mp = m.marketplace_id;
    let mut attributes = json!({
        "item_name": [{"value": l.title, "language_tag": m.language_tag, "marketplace_id": mp}],
        "condition_type": [{"value": condition_type(&l.condition), "marketplace_id": mp}],
    });
    let a = attributes.as_object_mut().expect("object literal");
    if let Some(brand) = &l.brand {
        a.insert(
            "brand".into(),
            json!([{"value": brand, "language_tag": m.language_tag, "marketplace_id": mp}]),
        );
    }
    if let Some(d) = &l.description {
        a.insert(
            "product_description".into(),
            json!([{"value": d, "language_tag": m.language_tag, "marketplace_id": mp}]),
        );
    }
    if let Some(gtin) = &l.gtin {
        a.insert(
            "externally_assigned_product_identifier".into(),
            json!([{"type": "ean", "value": gtin, "marketplace_id": mp}]),
        );
    }
    if let Some(url) = l.image_urls.first() {
        a.insert(
            "main_product_image_locator".into(),
            json!([{"media_location": url, "marketplace_id": mp}]),
        );
    }
    if let Some(price) = &l.price {
        let value = price.micros().unwrap_or(0) as f64 / 1_000_000.0;
        a.insert(
            "purchasable_offer".into(),
            json!([{"currency": price.currency, "marketplace_id": mp, "our_price": [{"schedule": [{"value_with_tax": value}]}]}]),
        );
    }
    let quantity = if l.active { l.quantity } else { Some(0) };
    if let Some(q) = quantity {
        a.insert(
            "fulfillment_availability".into(),
            fulfillment_availability(q),
        );
    }
    json!({"productType": m.product_type, "requirements": "LISTING", "attributes": attributes})
}

fn fulfillment_availability(quantity: i64) -> Value {
    json!([{"fulfillment_channel_code": "DEFAULT", "quantity": quantity.max(0)}])
}

/// `PATCH /listings/2021-08-01/items/{sellerId}/{sku}` body that sets the quantity only.
pub fn inventory_patch_body(quantity: i64, product_type: &str) -> Value {
    json!({"productType": product_type, "patches": [
        {"op": "replace", "path": "/attributes/fulfillment_availability", "value": fulfillment_availability(quantity)}
    ]})
}

/// `POST /orders/v0/orders/{orderId}/shipmentConfirmation` body. `None` when the order did not come from Amazon.
pub fn shipment_confirmation_body(
    f: &Fulfillment,
    marketplace_id: &str,
) -> Result<Option<(String, Value)>, PayloadError> {
    let Some(channel) = f.channel.as_ref().filter(|c| c.connector == "amazon") else {
        return Ok(None);
    };
    let mut items = Vec::with_capacity(f.items.len());
    for item in &f.items {
        let id = item.external_item_id.as_ref().ok_or_else(|| PayloadError {
            event_type: "order.fulfilled".into(),
            detail: "every item of an Amazon order needs externalItemId (Amazon's OrderItemId)"
                .into(),
        })?;
        items.push(json!({"orderItemId": id, "quantity": item.quantity}));
    }
    let body = json!({
        "marketplaceId": marketplace_id,
        "packageDetail": {
            "packageReferenceId": f.fulfillment_id,
            "carrierCode": f.carrier,
            "trackingNumber": f.tracking_number,
            "shipDate": f.shipped_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "orderItems": items,
        }
    });
    Ok(Some((channel.external_order_id.clone(), body)))
}

/// An order from `GET /orders/v0/orders`, as the `data` of a `marketplace.order.received` event.
pub fn order_event_data(order: &Value, config_id: &str) -> Option<(String, Value)> {
    let id = order.get("AmazonOrderId")?.as_str()?.to_owned();
    let data = json!({
        "connector": "amazon",
        "configId": config_id,
        "externalOrderId": id,
        "marketplaceId": order.get("MarketplaceId"),
        "status": order.get("OrderStatus"),
        "purchasedAt": order.get("PurchaseDate"),
        "lastUpdatedAt": order.get("LastUpdateDate"),
        "total": order.get("OrderTotal").map(|t| json!({"amount": t.get("Amount"), "currency": t.get("CurrencyCode")})),
        "fulfillmentChannel": order.get("FulfillmentChannel"),
        "itemsUnshipped": order.get("NumberOfItemsUnshipped"),
        "buyerEmail": order.pointer("/BuyerInfo/BuyerEmail"),
        "shippingAddress": order.get("ShippingAddress"),
    });
    Some((id, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflows::catalog::{fulfillment, listings};

    const M: Marketplace<'static> = Marketplace {
        marketplace_id: "ATVPDKIKX0DER",
        language_tag: "en_US",
        product_type: "PRODUCT",
    };

    #[test]
    fn a_listing_becomes_a_listings_items_put() {
        let l = listings(&json!({"sku": "TS-42", "title": "Trail Shoe", "brand": "Acme", "gtin": "4006381333931",
            "imageUrls": ["https://img/1.jpg"], "price": {"amount": "89.90", "currency": "USD"}, "quantity": 7}))
        .expect("valid");
        let body = listing_put_body(&l[0], &M);
        assert_eq!(body["productType"], "PRODUCT");
        assert_eq!(body["requirements"], "LISTING");
        let a = &body["attributes"];
        assert_eq!(a["item_name"][0]["value"], "Trail Shoe");
        assert_eq!(a["item_name"][0]["marketplace_id"], "ATVPDKIKX0DER");
        assert_eq!(
            a["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"],
            89.9
        );
        assert_eq!(a["fulfillment_availability"][0]["quantity"], 7);
        assert_eq!(
            a["externally_assigned_product_identifier"][0]["value"],
            "4006381333931"
        );
        assert_eq!(a["condition_type"][0]["value"], "new_new");
    }

    #[test]
    fn an_archived_product_is_listed_with_no_stock() {
        let l = listings(&json!({"sku": "A", "title": "T", "status": "ARCHIVED", "quantity": 5}))
            .expect("valid");
        assert_eq!(
            listing_put_body(&l[0], &M)["attributes"]["fulfillment_availability"][0]["quantity"],
            0
        );
    }

    #[test]
    fn quantity_patch_replaces_fulfillment_availability() {
        let body = inventory_patch_body(3, "SHOES");
        assert_eq!(body["productType"], "SHOES");
        assert_eq!(body["patches"][0]["op"], "replace");
        assert_eq!(
            body["patches"][0]["path"],
            "/attributes/fulfillment_availability"
        );
        assert_eq!(body["patches"][0]["value"][0]["quantity"], 3);
    }

    #[test]
    fn shipment_confirmation_needs_an_amazon_order() {
        let mut data = json!({"orderId": "o1", "fulfillmentId": "f1", "carrier": "UPS", "trackingNumber": "1Z",
            "shippedAt": "2026-11-20T10:00:00Z", "channel": {"connector": "amazon", "externalOrderId": "113-1"},
            "items": [{"externalItemId": "i1", "quantity": 2}]});
        let (order, body) = shipment_confirmation_body(&fulfillment(&data).expect("ok"), "MP")
            .expect("ok")
            .expect("amazon");
        assert_eq!(order, "113-1");
        assert_eq!(
            body["packageDetail"]["orderItems"][0],
            json!({"orderItemId": "i1", "quantity": 2})
        );
        assert_eq!(body["packageDetail"]["shipDate"], "2026-11-20T10:00:00Z");
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
    fn orders_become_event_data() {
        let (id, data) = order_event_data(&json!({"AmazonOrderId": "113-2", "OrderStatus": "Unshipped",
            "PurchaseDate": "2026-11-20T10:00:00Z", "OrderTotal": {"Amount": "10.00", "CurrencyCode": "USD"}}), "cfg")
        .expect("has id");
        assert_eq!(id, "113-2");
        assert_eq!(data["total"]["amount"], "10.00");
        assert_eq!(data["status"], "Unshipped");
        assert_eq!(order_event_data(&json!({}), "cfg"), None);
    }
}
