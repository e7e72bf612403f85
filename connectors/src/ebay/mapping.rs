//! eBay Sell Inventory API v1 shapes: bulk inventory item get and create-or-replace, and bulk price/quantity
//! updates (all at most 25 SKUs per call).

use std::collections::HashMap;

use serde_json::{Value, json};

use workflows::catalog::{Listing, StockLevel};

/// Most requests eBay accepts in one bulk call.
pub const BULK_LIMIT: usize = 25;

fn condition(c: &str) -> &'static str {
    match c {
        "used" => "USED_EXCELLENT",
        "refurbished" => "SELLER_REFURBISHED",
        _ => "NEW",
    }
}

/// One request of `POST /sell/inventory/v1/bulk_create_or_replace_inventory_item` (idempotent by SKU). A replace
/// replaces the availability too, so without a quantity in the event the item's `current` quantity on eBay is
/// restated (read with `bulk_get_inventory_item`).
pub fn inventory_item(l: &Listing, locale: &str, current: Option<i64>) -> Value {
    let mut aspects = serde_json::Map::new();
    if let Some(brand) = &l.brand {
        aspects.insert("Brand".into(), json!([brand]));
    }
    for (k, v) in &l.attributes {
        aspects.insert(k.clone(), json!([v]));
    }
    let mut product = json!({"title": l.title, "aspects": aspects, "imageUrls": l.image_urls});
    if let Some(d) = &l.description {
        product["description"] = json!(d);
    }
    if let Some(gtin) = &l.gtin {
        product["ean"] = json!([gtin]);
    }
    let mut item = json!({"sku": l.sku, "locale": locale, "condition": condition(&l.condition), "product": product});
    let quantity = if l.active {
        l.quantity.or(current)
    } else {
        Some(0)
    };
    if let Some(q) = quantity {
        item["availability"] = json!({"shipToLocationAvailability": {"quantity": q}});
    }
    item
}

/// Bodies of `bulk_create_or_replace_inventory_item`, in chunks of [`BULK_LIMIT`]; `current` gives the quantity
/// on eBay of SKUs whose event has none.
pub fn inventory_item_batches(
    listings: &[Listing],
    locale: &str,
    current: &HashMap<String, i64>,
) -> Vec<Value> {
    listings
        .chunks(BULK_LIMIT)
        .map(|chunk| {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|l| inventory_item(l, locale, current.get(&l.sku).copied()))
                .collect();
            json!({"requests": requests})
        })
        .collect()
}

/// Bodies of `POST /sell/inventory/v1/bulk_get_inventory_item` for `skus`, in chunks of [`BULK_LIMIT`].
pub fn get_item_batches(skus: &[&str]) -> Vec<Value> {
    skus.chunks(BULK_LIMIT)
        .map(|chunk| json!({"requests": chunk.iter().map(|s| json!({"sku": s})).collect::<Vec<_>>()}))
        .collect()
}

/// The ship-to-home quantities in a `bulk_get_inventory_item` answer, by SKU (SKUs eBay does not have are absent).
pub fn current_quantities(answer: &Value) -> HashMap<String, i64> {
    answer["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["statusCode"] == 200)
        .filter_map(|r| {
            let q = r["inventoryItem"]["availability"]["shipToLocationAvailability"]["quantity"]
                .as_i64()?;
            Some((r["sku"].as_str()?.to_owned(), q))
        })
        .collect()
}

/// A SKU's new quantity at both levels eBay keeps (the listing shows the smaller): the inventory item's
/// ship-to-home quantity and each published offer's available quantity.
pub fn quantity_request(level: &StockLevel, published: &[String]) -> Value {
    let mut r =
        json!({"sku": level.sku, "shipToLocationAvailability": {"quantity": level.quantity}});
    if !published.is_empty() {
        let offers: Vec<Value> = published
            .iter()
            .map(|id| json!({"offerId": id, "availableQuantity": level.quantity}))
            .collect();
        r["offers"] = json!(offers);
    }
    r
}

/// A published offer's new price (and quantity when known), for `bulk_update_price_quantity` (which revises
/// published offers only).
pub fn offer_price_request(l: &Listing, published: &[String]) -> Option<Value> {
    let price = l.price.as_ref()?;
    let value = price.two_decimals()?;
    let offers: Vec<Value> = published
        .iter()
        .map(|id| {
            let mut o =
                json!({"offerId": id, "price": {"value": value, "currency": price.currency}});
            if let Some(q) = l.quantity.filter(|_| l.active) {
                o["availableQuantity"] = json!(q);
            }
            o
        })
        .collect();
    (!offers.is_empty()).then(|| json!({"sku": l.sku, "offers": offers}))
}

/// Per-item failures in a bulk answer (`responses[].statusCode`), as `(sku, status, message)`.
pub fn bulk_failures(answer: &Value) -> Vec<(String, u16, String)> {
    answer["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let status = r["statusCode"].as_u64()? as u16;
            if (200..300).contains(&status) {
                return None;
            }
            let message = r["errors"][0]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned();
            Some((r["sku"].as_str().unwrap_or("?").to_owned(), status, message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflows::catalog::listings;

    #[test]
    fn listings_become_inventory_items_in_chunks_of_25() {
        let variants: Vec<Value> = (0..30)
            .map(|i| json!({"sku": format!("S{i}"), "quantity": i}))
            .collect();
        let l =
            listings(&json!({"title": "T", "brand": "Acme", "variants": variants})).expect("valid");
        let batches = inventory_item_batches(&l, "en_US", &HashMap::new());
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0]["requests"].as_array().map(Vec::len), Some(25));
        let first = &batches[0]["requests"][0];
        assert_eq!(first["sku"], "S0");
        assert_eq!(first["locale"], "en_US");
        assert_eq!(first["condition"], "NEW");
        assert_eq!(first["product"]["aspects"]["Brand"], json!(["Acme"]));
        assert_eq!(
            batches[1]["requests"][4]["availability"]["shipToLocationAvailability"]["quantity"],
            29
        );
    }

    #[test]
    fn an_item_without_quantity_restates_the_current_one() {
        let l = listings(&json!({"sku": "A", "title": "T"})).expect("valid");
        let current = HashMap::from([("A".to_owned(), 6)]);
        let b = inventory_item_batches(&l, "en_US", &current);
        assert_eq!(
            b[0]["requests"][0]["availability"]["shipToLocationAvailability"]["quantity"],
            6
        );
        let b = inventory_item_batches(&l, "en_US", &HashMap::new());
        assert!(b[0]["requests"][0].get("availability").is_none());
        assert_eq!(
            get_item_batches(&["A", "B"])[0],
            json!({"requests": [{"sku": "A"}, {"sku": "B"}]})
        );
        let answer = json!({"responses": [{"statusCode": 200, "sku": "A", "inventoryItem": {"availability": {"shipToLocationAvailability": {"quantity": 6}}}},
            {"statusCode": 404, "sku": "B"}]});
        assert_eq!(current_quantities(&answer), current);
    }

    #[test]
    fn quantities_go_to_the_item_and_its_published_offers_and_prices_to_published_offers() {
        let level = StockLevel {
            sku: "A".into(),
            quantity: 3,
        };
        assert_eq!(
            quantity_request(&level, &["o1".into()]),
            json!({"sku": "A", "shipToLocationAvailability": {"quantity": 3}, "offers": [{"offerId": "o1", "availableQuantity": 3}]})
        );
        assert_eq!(
            quantity_request(&level, &[]),
            json!({"sku": "A", "shipToLocationAvailability": {"quantity": 3}})
        );
        let l = listings(&json!({"sku": "A", "title": "T", "price": {"amount": "9.5", "currency": "USD"}, "quantity": 2})).expect("valid");
        let r = offer_price_request(&l[0], &["o1".into()]).expect("has price");
        assert_eq!(
            r["offers"][0],
            json!({"offerId": "o1", "price": {"value": "9.50", "currency": "USD"}, "availableQuantity": 2})
        );
        assert_eq!(offer_price_request(&l[0], &[]), None);
    }

    #[test]
    fn bulk_answers_report_failed_items() {
        let answer = json!({"responses": [{"sku": "A", "statusCode": 200},
            {"sku": "B", "statusCode": 400, "errors": [{"errorId": 25002, "message": "bad aspect"}]}]});
        assert_eq!(
            bulk_failures(&answer),
            vec![("B".to_owned(), 400, "bad aspect".to_owned())]
        );
    }
}
