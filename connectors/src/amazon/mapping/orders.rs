//! Orders: the Orders API v0 shipment confirmation (`confirmShipment`, not deprecated) and Orders API
//! v2026-01-01 orders as the data of `marketplace.order.received` events.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use workflows::catalog::{Fulfillment, PayloadError};

/// Carrier codes of Amazon's carrier code list that platform carriers are matched to (case, spaces and dashes
/// ignored); any other carrier is sent as `Other` with its name in `carrierName`.
pub const CARRIER_CODES: &[&str] = &[
    "UPS",
    "USPS",
    "FedEx",
    "DHL",
    "DHL eCommerce",
    "Royal Mail",
    "Canada Post",
    "Deutsche Post",
    "DPD",
    "GLS",
    "Hermes",
    "TNT",
    "Australia Post",
    "Japan Post",
    "La Poste",
    "Correos",
    "PostNL",
    "Amazon Shipping",
];

/// `carrierCode` and `carrierName` of a platform carrier: a listed code, or `Other` with the carrier's name (which
/// Amazon requires with `Other`).
pub fn carrier(name: &str) -> (&'static str, Option<&str>) {
    let key = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = key(name);
    match CARRIER_CODES.iter().find(|c| key(c) == wanted) {
        Some(code) => (code, None),
        None => ("Other", Some(name)),
    }
}

/// Amazon's `packageReferenceId` of a fulfillment: a positive number (the only values Amazon accepts), derived from
/// the order and fulfillment ids, so the same fulfillment always gets the same number (sent again, it edits that
/// package) and the mapping needs no storage. Numbers are 1..=2^31-1; two fulfillments of one order collide with a
/// probability of about 5·10⁻¹⁰.
pub fn package_reference_id(external_order_id: &str, fulfillment_id: &str) -> String {
    let digest = Sha256::digest(format!("{external_order_id}/{fulfillment_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 2_147_483_647 + 1).to_string()
}

/// `POST /orders/v0/orders/{orderId}/shipmentConfirmation` body, with the order id. `None` when the order did not
/// come from Amazon.
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
    let order_id = &channel.external_order_id;
    let (code, name) = carrier(&f.carrier);
    let mut package = json!({
        "packageReferenceId": package_reference_id(order_id, &f.fulfillment_id),
        "carrierCode": code,
        "trackingNumber": f.tracking_number,
        "shipDate": f.shipped_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "orderItems": items,
    });
    if let Some(name) = name {
        package["carrierName"] = json!(name);
    }
    let body = json!({"marketplaceId": marketplace_id, "packageDetail": package});
    Ok(Some((order_id.clone(), body)))
}

/// The record id of an order in one status (`113-…/UNSHIPPED`): polls publish each order once per status.
pub fn order_record_id(order_id: &str, status: &str) -> String {
    format!("{order_id}/{status}")
}

/// An order from `searchOrders` (datasets `PROCEEDS` and `FULFILLMENT`), as `(record id, event data)`. Buyer and
/// address data (restricted) are not requested: `buyerEmail` and `shippingAddress` stay null.
pub fn order_event_data(order: &Value, config_id: &str) -> Option<(String, Value)> {
    let id = order.get("orderId")?.as_str()?;
    let status = order["fulfillment"]["fulfillmentStatus"]
        .as_str()
        .unwrap_or("UNKNOWN");
    let unshipped: i64 = order["orderItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["fulfillment"]["quantityUnfulfilled"].as_i64())
        .sum();
    let total = order["proceeds"]["grandTotal"]
        .as_object()
        .map(|t| json!({"amount": t.get("amount"), "currency": t.get("currencyCode")}));
    let data = json!({
        "connector": "amazon",
        "configId": config_id,
        "externalOrderId": id,
        "marketplaceId": order["salesChannel"]["marketplaceId"],
        "status": status,
        "purchasedAt": order.get("createdTime"),
        "lastUpdatedAt": order.get("lastUpdatedTime"),
        "total": total,
        "fulfillmentChannel": order["fulfillment"].get("fulfilledBy"),
        "itemsUnshipped": unshipped,
        "buyerEmail": null,
        "shippingAddress": null,
    });
    Some((order_record_id(id, status), data))
}
