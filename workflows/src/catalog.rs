//! The platform's product, inventory and fulfillment payloads as connectors read them (the `data` of
//! `product.updated`, `inventory.updated` and `order.fulfilled`). docs/connectors.md documents every field relied on.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Why a payload cannot be synced (the job dead-letters with this reason: retrying cannot fix the payload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event_type} payload: {detail}")]
pub struct PayloadError {
    /// The event.
    pub event_type: String,
    /// What is wrong.
    pub detail: String,
}

fn invalid(event_type: &str, detail: impl Into<String>) -> PayloadError {
    PayloadError {
        event_type: event_type.to_owned(),
        detail: detail.into(),
    }
}

/// A price: a decimal string amount and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Money {
    /// Decimal string with at most 6 fractional digits ("89.90").
    pub amount: String,
    /// ISO 4217 code ("EUR").
    pub currency: String,
}

impl Money {
    /// The amount in millionths (Google's `amountMicros`), computed without floating point.
    pub fn micros(&self) -> Option<i64> {
        let (whole, frac) = self
            .amount
            .trim()
            .split_once('.')
            .unwrap_or((self.amount.trim(), ""));
        if whole.is_empty() || frac.len() > 6 || !whole.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let whole: i64 = whole.parse().ok()?;
        let frac: i64 = format!("{frac:0<6}").parse().ok()?;
        whole.checked_mul(1_000_000)?.checked_add(frac)
    }

    /// The amount with two decimals ("89.90"), as eBay wants it.
    pub fn two_decimals(&self) -> Option<String> {
        let m = self.micros()?;
        let cents = (m + 5_000) / 10_000;
        Some(format!("{}.{:02}", cents / 100, cents % 100))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProduct {
    product_id: Option<String>,
    sku: Option<String>,
    title: Option<String>,
    description: Option<String>,
    brand: Option<String>,
    #[serde(default)]
    image_urls: Vec<String>,
    url: Option<String>,
    status: Option<String>,
    price: Option<Money>,
    quantity: Option<i64>,
    gtin: Option<String>,
    #[serde(default)]
    category_ids: Vec<String>,
    condition: Option<String>,
    #[serde(default)]
    variants: Vec<RawVariant>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVariant {
    sku: Option<String>,
    title: Option<String>,
    price: Option<Money>,
    quantity: Option<i64>,
    gtin: Option<String>,
    #[serde(default)]
    image_urls: Vec<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

/// One sellable item (a variant, or a product without variants), everything a channel listing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The product it belongs to (Google's item group).
    pub product_id: Option<String>,
    /// Seller SKU: the key on every channel.
    pub sku: String,
    /// Title (the variant's, else the product's).
    pub title: String,
    /// Long description, as the store wrote it (channels may truncate it).
    pub description: Option<String>,
    /// Brand or manufacturer name, when known.
    pub brand: Option<String>,
    /// Images, main first.
    pub image_urls: Vec<String>,
    /// Product page.
    pub url: Option<String>,
    /// Price of this variant (the product's when the variant has none).
    pub price: Option<Money>,
    /// Sellable quantity, when the event carries it.
    pub quantity: Option<i64>,
    /// GTIN/EAN/UPC.
    pub gtin: Option<String>,
    /// Amazon catalog item (ASIN) the store says this is: the variant attribute `asin`, which is not an attribute
    /// of the item itself (so not in `attributes`).
    pub asin: Option<String>,
    /// The platform categories of the product (mapped to marketplace product types).
    pub category_ids: Vec<String>,
    /// `new` (default), `used` or `refurbished`.
    pub condition: String,
    /// False for archived or draft products: channels show them out of stock.
    pub active: bool,
    /// Variant attributes (size, colour…), as strings.
    pub attributes: Vec<(String, String)>,
}

/// The listings in a `product.updated` payload: one per variant, or the product itself when it has none.
pub fn listings(data: &Value) -> Result<Vec<Listing>, PayloadError> {
    let e = "product.updated";
    let mut p: RawProduct =
        serde_json::from_value(data.clone()).map_err(|err| invalid(e, err.to_string()))?;
    let condition = product_condition(&p)?;
    let variants = if p.variants.is_empty() {
        vec![RawVariant {
            sku: p.sku.clone(),
            title: None,
            price: p.price.clone(),
            quantity: p.quantity,
            gtin: p.gtin.clone(),
            image_urls: Vec::new(),
            attributes: Default::default(),
        }]
    } else {
        std::mem::take(&mut p.variants)
    };
    variants
        .into_iter()
        .enumerate()
        .map(|(i, v)| variant_listing(&p, &condition, i, v))
        .collect()
}

/// The product's condition, lower-cased (`new` when absent); anything but new, used or refurbished is refused.
fn product_condition(p: &RawProduct) -> Result<String, PayloadError> {
    let condition = p
        .condition
        .clone()
        .unwrap_or_else(|| "new".into())
        .to_lowercase();
    if ["new", "used", "refurbished"].contains(&condition.as_str()) {
        Ok(condition)
    } else {
        Err(invalid(
            "product.updated",
            format!("condition {condition:?} is not new, used or refurbished"),
        ))
    }
}

/// Variant `i` of product `p` as a listing: the variant's own values, the product's where it has none.
fn variant_listing(
    p: &RawProduct,
    condition: &str,
    i: usize,
    v: RawVariant,
) -> Result<Listing, PayloadError> {
    let e = "product.updated";
    let sku = v
        .sku
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid(e, format!("variant {i} has no sku")))?;
    let title = v
        .title
        .or_else(|| p.title.clone().filter(|t| !t.trim().is_empty()))
        .ok_or_else(|| invalid(e, "title is required"))?;
    let price = v.price.or_else(|| p.price.clone());
    if let Some(m) = &price
        && m.micros().is_none()
    {
        return Err(invalid(
            e,
            format!("price {:?} of {sku} is not a decimal amount", m.amount),
        ));
    }
    let (asin, attributes): (Vec<_>, Vec<_>) = v
        .attributes
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .partition(|(k, _)| k.eq_ignore_ascii_case("asin"));
    let mut image_urls = v.image_urls;
    image_urls.extend(p.image_urls.iter().cloned());
    image_urls.dedup();
    Ok(Listing {
        product_id: p.product_id.clone(),
        sku,
        title,
        description: p.description.clone(),
        brand: p.brand.clone(),
        image_urls,
        url: p.url.clone(),
        price,
        quantity: v.quantity.map(|q| q.max(0)),
        gtin: v.gtin.or_else(|| p.gtin.clone()),
        asin: asin.into_iter().next().map(|(_, v)| v),
        category_ids: p.category_ids.clone(),
        condition: condition.to_owned(),
        active: p
            .status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("active")),
        attributes,
    })
}

/// A new stock level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StockLevel {
    /// Seller SKU.
    pub sku: String,
    /// Sellable quantity (negative values are sent as 0).
    pub quantity: i64,
}

/// The stock levels in an `inventory.updated` payload: `{items: [{sku, quantity}]}` or a single `{sku, quantity}`.
pub fn stock_levels(data: &Value) -> Result<Vec<StockLevel>, PayloadError> {
    let e = "inventory.updated";
    let items = match data.get("items") {
        Some(items) => serde_json::from_value::<Vec<StockLevel>>(items.clone()),
        None => serde_json::from_value::<StockLevel>(data.clone()).map(|s| vec![s]),
    }
    .map_err(|err| invalid(e, err.to_string()))?;
    if items.is_empty() {
        return Err(invalid(e, "items is empty"));
    }
    Ok(items
        .into_iter()
        .map(|s| StockLevel {
            quantity: s.quantity.max(0),
            ..s
        })
        .collect())
}

/// A shipped line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippedItem {
    /// The channel's id of the order line (Amazon's `OrderItemId`).
    pub external_item_id: Option<String>,
    /// Seller SKU.
    pub sku: Option<String>,
    /// Units shipped.
    pub quantity: i64,
}

/// Which channel an order came from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderChannel {
    /// Connector type (`amazon`).
    pub connector: String,
    /// The channel's order id.
    pub external_order_id: String,
}

/// An `order.fulfilled` payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    /// Platform order id.
    pub order_id: String,
    /// Platform fulfillment id: one shipment confirmation per fulfillment.
    pub fulfillment_id: String,
    /// Set for orders that came from a channel.
    pub channel: Option<OrderChannel>,
    /// Carrier code ("UPS").
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
    /// When it shipped.
    pub shipped_at: DateTime<Utc>,
    /// The lines in the package.
    pub items: Vec<ShippedItem>,
}

/// Parse an `order.fulfilled` payload.
pub fn fulfillment(data: &Value) -> Result<Fulfillment, PayloadError> {
    let f: Fulfillment = serde_json::from_value(data.clone())
        .map_err(|err| invalid("order.fulfilled", err.to_string()))?;
    if f.items.is_empty() {
        return Err(invalid("order.fulfilled", "items is empty"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_converts_without_floating_point() {
        let m = |a: &str| Money {
            amount: a.into(),
            currency: "EUR".into(),
        };
        assert_eq!(m("89.90").micros(), Some(89_900_000));
        assert_eq!(m("0.000001").micros(), Some(1));
        assert_eq!(m("12").micros(), Some(12_000_000));
        assert_eq!(m("1.2345678").micros(), None);
        assert_eq!(m("-1").micros(), None);
        assert_eq!(m("1e3").micros(), None);
        assert_eq!(m("89.9").two_decimals().as_deref(), Some("89.90"));
        assert_eq!(m("0.005").two_decimals().as_deref(), Some("0.01"));
    }

    #[test]
    fn variants_inherit_product_fields() {
        let data = json!({"productId": "p1", "title": "Trail Shoe", "brand": "Acme", "imageUrls": ["https://img/1.jpg"],
            "price": {"amount": "89.90", "currency": "EUR"},
            "variants": [{"sku": "TS-42", "quantity": 7, "attributes": {"size": "42"}},
                         {"sku": "TS-43", "title": "Trail Shoe 43", "price": {"amount": "99", "currency": "EUR"}}]});
        let l = listings(&data).expect("valid");
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].title.as_str(), l[0].quantity, l[0].brand.as_deref()),
            ("Trail Shoe", Some(7), Some("Acme"))
        );
        assert_eq!(l[0].attributes, vec![("size".to_owned(), "42".to_owned())]);
        assert_eq!(
            l[1].price.as_ref().and_then(Money::micros),
            Some(99_000_000)
        );
        assert!(l[0].active && l[0].condition == "new");
    }

    #[test]
    fn a_product_without_variants_is_one_listing_and_bad_payloads_say_why() {
        let one =
            listings(&json!({"sku": "A", "title": "T", "status": "ARCHIVED"})).expect("valid");
        assert_eq!((one.len(), one[0].active), (1, false));
        assert!(
            listings(&json!({"title": "T"}))
                .expect_err("no sku")
                .detail
                .contains("sku")
        );
        assert!(
            listings(&json!({"sku": "A"}))
                .expect_err("no title")
                .detail
                .contains("title")
        );
        let bad_price =
            json!({"sku": "A", "title": "T", "price": {"amount": "ten", "currency": "EUR"}});
        assert!(listings(&bad_price).is_err());
    }

    #[test]
    fn stock_levels_accept_one_or_many_and_floor_at_zero() {
        assert_eq!(
            stock_levels(&json!({"sku": "A", "quantity": -2})).expect("one"),
            vec![StockLevel {
                sku: "A".into(),
                quantity: 0
            }]
        );
        assert_eq!(
            stock_levels(
                &json!({"items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]})
            )
            .expect("two")
            .len(),
            2
        );
        assert!(stock_levels(&json!({"items": []})).is_err());
    }

    #[test]
    fn fulfillments_parse() {
        let f = fulfillment(&json!({"orderId": "o1", "fulfillmentId": "f1", "carrier": "UPS", "trackingNumber": "1Z",
            "shippedAt": "2026-11-20T10:00:00Z", "channel": {"connector": "amazon", "externalOrderId": "113-1"},
            "items": [{"externalItemId": "i1", "quantity": 2}]})).expect("valid");
        assert_eq!(
            f.channel.map(|c| c.external_order_id).as_deref(),
            Some("113-1")
        );
        assert!(fulfillment(&json!({"orderId": "o1"})).is_err());
    }
}
