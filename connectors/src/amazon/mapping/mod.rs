//! Amazon Selling Partner API shapes. Listings (this module): which kind of listing a platform listing becomes and
//! its Listings Items API 2021-08-01 bodies. Orders ([`orders`]): the v0 shipment confirmation and Orders API
//! v2026-01-01 orders as platform events.

mod orders;

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use workflows::catalog::{Listing, PayloadError};

pub use self::orders::{
    CARRIER_CODES, carrier, order_event_data, order_record_id, package_reference_id,
    shipment_confirmation_body,
};

/// The product type of offer-only listings: Amazon's generic type, refused for creating products (error 4000004,
/// amzn/selling-partner-api-models#2427) and accepted for `LISTING_OFFER_ONLY`.
pub const OFFER_PRODUCT_TYPE: &str = "PRODUCT";

/// Per-marketplace context of the listing attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marketplace<'a> {
    /// e.g. `ATVPDKIKX0DER`.
    pub marketplace_id: &'a str,
    /// e.g. `en_US`.
    pub language_tag: &'a str,
}

/// What a product type's JSON Schema (Product Type Definitions API) says about its attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductTypeDefinition {
    /// Attributes a `LISTING` submission must carry.
    pub required: Vec<String>,
    /// Every attribute the type defines.
    pub properties: BTreeSet<String>,
}

impl ProductTypeDefinition {
    /// The definition in a product type's JSON Schema document (its `required` and `properties`).
    pub fn from_schema(schema: &Value) -> Self {
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        };
        Self {
            required: names(&schema["required"]),
            properties: schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// How a platform listing goes to Amazon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingKind<'a> {
    /// A product of this type with its offer (`requirements: LISTING`): Amazon creates or matches the product.
    Product(&'a str),
    /// An offer on an existing catalog item (`LISTING_OFFER_ONLY`): the listing's ASIN, or the one the catalog
    /// finds for its EAN (`searchCatalogItems`), which the adapter sets as the listing's ASIN before the body.
    Offer,
}

/// The kind of listing `l` becomes: an offer when it names an ASIN, a product when a product type is configured
/// for it (its categories', else the config's; never `PRODUCT`), an offer matched by EAN when it has a GTIN. None of
/// these is an error no retry can fix.
pub fn listing_kind<'a>(
    l: &Listing,
    product_type: Option<&'a str>,
) -> Result<ListingKind<'a>, PayloadError> {
    if l.asin.is_some() {
        return Ok(ListingKind::Offer);
    }
    if let Some(t) = product_type.filter(|t| *t != OFFER_PRODUCT_TYPE) {
        return Ok(ListingKind::Product(t));
    }
    if l.gtin.is_some() {
        return Ok(ListingKind::Offer);
    }
    Err(PayloadError {
        event_type: "product.updated".into(),
        detail: format!(
            "Amazon cannot list {}: it has no ASIN or GTIN to offer on an existing catalog item, and no Amazon \
             product type is configured for it (settings.productTypes for its categories {:?}, or \
             settings.productType)",
            l.sku, l.category_ids
        ),
    })
}

fn condition_type(condition: &str) -> &'static str {
    match condition {
        "used" => "used_good",
        "refurbished" => "refurbished_refurbished",
        _ => "new_new",
    }
}

/// `PUT /listings/2021-08-01/items/{sellerId}/{sku}` body (create or replace, idempotent by SKU). `current` is the
/// listing's `fulfillment_availability` on Amazon, restated (with the new quantity when the event has one) because
/// a `PUT` replaces every attribute; `definition` is the product type's, for [`ListingKind::Product`].
pub fn listing_put_body(
    l: &Listing,
    m: &Marketplace<'_>,
    kind: &ListingKind<'_>,
    definition: Option<&ProductTypeDefinition>,
    current: Option<&Value>,
) -> Value {
    let mp = m.marketplace_id;
    let mut a = Map::new();
    a.insert(
        "condition_type".into(),
        json!([{"value": condition_type(&l.condition), "marketplace_id": mp}]),
    );
    if let Some(price) = &l.price {
        let value = price.micros().unwrap_or(0) as f64 / 1_000_000.0;
        a.insert(
            "purchasable_offer".into(),
            json!([{"currency": price.currency, "marketplace_id": mp, "our_price": [{"schedule": [{"value_with_tax": value}]}]}]),
        );
    }
    if let Some(fa) = restated_availability(l, current) {
        a.insert("fulfillment_availability".into(), fa);
    }
    match kind {
        ListingKind::Offer => {
            if let Some(asin) = &l.asin {
                a.insert(
                    "merchant_suggested_asin".into(),
                    json!([{"value": asin, "marketplace_id": mp}]),
                );
            }
            json!({"productType": OFFER_PRODUCT_TYPE, "requirements": "LISTING_OFFER_ONLY", "attributes": a})
        }
        ListingKind::Product(product_type) => {
            product_attributes(l, m, definition, &mut a);
            json!({"productType": product_type, "requirements": "LISTING", "attributes": a})
        }
    }
}

fn ean(gtin: &str, mp: &str) -> Value {
    json!([{"type": "ean", "value": gtin, "marketplace_id": mp}])
}

/// The product facts of a full listing, and the platform's variant attributes the product type defines (by name,
/// lower case with `_` for spaces and dashes: `Size` → `size`).
fn product_attributes(
    l: &Listing,
    m: &Marketplace<'_>,
    definition: Option<&ProductTypeDefinition>,
    a: &mut Map<String, Value>,
) {
    let (mp, lang) = (m.marketplace_id, m.language_tag);
    let text = |v: &str| json!([{"value": v, "language_tag": lang, "marketplace_id": mp}]);
    a.insert("item_name".into(), text(&l.title));
    if let Some(brand) = &l.brand {
        a.insert("brand".into(), text(brand));
    }
    if let Some(d) = &l.description {
        a.insert("product_description".into(), text(d));
    }
    if let Some(gtin) = &l.gtin {
        a.insert(
            "externally_assigned_product_identifier".into(),
            ean(gtin, mp),
        );
    }
    if let Some(url) = l.image_urls.first() {
        a.insert(
            "main_product_image_locator".into(),
            json!([{"media_location": url, "marketplace_id": mp}]),
        );
    }
    for (name, value) in &l.attributes {
        let name = name.to_lowercase().replace([' ', '-'], "_");
        if definition.is_some_and(|d| d.properties.contains(&name)) && !a.contains_key(&name) {
            a.insert(name, text(value));
        }
    }
}

/// Required attributes of the product type that `body` lacks.
pub fn missing_attributes(body: &Value, definition: &ProductTypeDefinition) -> Vec<String> {
    definition
        .required
        .iter()
        .filter(|r| body["attributes"].get(r.as_str()).is_none())
        .cloned()
        .collect()
}

/// The `fulfillment_availability` a `PUT` carries: Amazon's current one (handling time and all) with the event's
/// quantity when it has one, else as it is; a new one when Amazon has none; none when neither is known (Amazon then
/// has no stock for it, as before).
fn restated_availability(l: &Listing, current: Option<&Value>) -> Option<Value> {
    let quantity = if l.active { l.quantity } else { Some(0) };
    let current = current.filter(|c| c.as_array().is_some_and(|a| !a.is_empty()));
    match (current, quantity) {
        (Some(c), Some(q)) => {
            let mut c = c.clone();
            let i = c
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .position(|e| e["fulfillment_channel_code"] == "DEFAULT")
                })
                .unwrap_or(0);
            c[i]["quantity"] = json!(q.max(0));
            Some(c)
        }
        (Some(c), None) => Some(c.clone()),
        (None, Some(q)) => Some(fulfillment_availability(q)),
        (None, None) => None,
    }
}

fn fulfillment_availability(quantity: i64) -> Value {
    json!([{"fulfillment_channel_code": "DEFAULT", "quantity": quantity.max(0)}])
}

/// `PATCH /listings/2021-08-01/items/{sellerId}/{sku}` body that sets the quantity only: JSON Patch `merge`
/// (supported since June 2025), so the listing's handling time and other availability fields are kept. Offer
/// attributes are patched with the generic `PRODUCT` type, as the Listings Items API use case guide does.
pub fn inventory_patch_body(quantity: i64) -> Value {
    json!({"productType": OFFER_PRODUCT_TYPE, "patches": [
        {"op": "merge", "path": "/attributes/fulfillment_availability", "value": fulfillment_availability(quantity)}
    ]})
}

#[cfg(test)]
mod tests;
