//! The fake's Listings Items API 2021-08-01 and Product Type Definitions API 2020-09-01. A `PUT` creates or
//! replaces the whole listing, as Amazon's does; a body the model refuses is `400 InvalidInput`; a valid body Amazon
//! would not accept is `200 INVALID` with `issues[]`: a product created with the `PRODUCT` type (4000004,
//! amzn/selling-partner-api-models#2427), a required attribute of the product type missing (90220, the model's
//! example issue), an offer-only listing naming no catalog item (the fake's own code `NO_MATCHING_ASIN`). It also
//! answers `searchCatalogItems` (Catalog Items API 2022-04-01) from its catalog.

use std::sync::LazyLock;

use poem::Response;
use serde_json::{Map, Value, json};

use super::{Amazon, error};
use crate::fake::{Call, Contract, FakeChannels, State, check_body, json_response};

const MODEL: &str =
    include_str!("../../../fixtures/contracts/amazon-listings-items-2021-08-01.json");
static PUT: LazyLock<Contract> = LazyLock::new(|| Contract::new(MODEL, "ListingsItemPutRequest"));
static PATCH: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(MODEL, "ListingsItemPatchRequest"));

/// Offer attributes every product type defines (all a `LISTING_OFFER_ONLY` submission carries).
const OFFER_ATTRIBUTES: &[&str] = &[
    "condition_type",
    "merchant_suggested_asin",
    "externally_assigned_product_identifier",
    "purchasable_offer",
    "fulfillment_availability",
];

/// The listings and product-type routes, or `None` for another path.
pub(super) fn route(state: &mut State, call: &Call, base: &str) -> Option<Response> {
    let p = call.path.as_str();
    if let Some(name) = p.strip_prefix("/definitions/2020-09-01/productTypes/") {
        return Some(definition(&state.amazon, call, name, base));
    }
    if p == "/catalog/2022-04-01/items" {
        return Some(search_catalog(&state.amazon, call));
    }
    let rest = p.strip_prefix("/listings/2021-08-01/items/")?;
    let sku = rest.split_once('/').map(|(_, sku)| sku.to_owned())?;
    if call.param("marketplaceIds").is_none() {
        return Some(error(400, "InvalidInput", "marketplaceIds is required"));
    }
    Some(match call.method.as_str() {
        "PUT" => put(state, call, &sku),
        "PATCH" => patch(state, call, &sku),
        "GET" => get(&state.amazon, call, &sku),
        _ => error(405, "MethodNotAllowed", p),
    })
}

fn issue(code: &str, message: String, attribute: Option<&str>) -> Value {
    let mut i = json!({"code": code, "message": message, "severity": "ERROR"});
    if let Some(a) = attribute {
        i["attributeNames"] = json!([a]);
        i["categories"] = json!(["MISSING_ATTRIBUTE"]);
    }
    i
}

fn submission(sku: &str, issues: Vec<Value>) -> Response {
    let status = if issues.is_empty() {
        "ACCEPTED"
    } else {
        "INVALID"
    };
    json_response(
        200,
        json!({"sku": sku, "status": status, "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003", "issues": issues}),
    )
}

fn put(state: &mut State, call: &Call, sku: &str) -> Response {
    if let Some(detail) = check_body(state, call, &PUT) {
        return error(400, "InvalidInput", &detail);
    }
    let body = call.json();
    let product_type = body["productType"].as_str().unwrap_or_default();
    let attributes = body["attributes"].as_object().cloned().unwrap_or_default();
    let issues = match body["requirements"].as_str().unwrap_or("LISTING") {
        "LISTING_OFFER_ONLY" => offer_issues(&state.amazon, &attributes),
        _ => product_issues(&state.amazon, product_type, &attributes),
    };
    if issues.is_empty() {
        let listing = json!({"productType": product_type, "attributes": attributes});
        state.amazon.listings.insert(sku.to_owned(), listing);
    }
    submission(sku, issues)
}

fn product_issues(a: &Amazon, product_type: &str, attributes: &Map<String, Value>) -> Vec<Value> {
    if product_type == "PRODUCT" {
        let m = "Creating products is not supported with the PRODUCT Amazon product type.";
        return vec![issue("4000004", m.into(), None)];
    }
    let Some(required) = a.product_types.get(product_type) else {
        let m = format!("'{product_type}' is not a valid product type in this marketplace.");
        return vec![issue("4000001", m, None)];
    };
    required
        .iter()
        .filter(|r| !attributes.contains_key(r.as_str()))
        .map(|r| {
            issue(
                "90220",
                format!("'{r}' is required but not supplied."),
                Some(r),
            )
        })
        .collect()
}

/// An offer-only listing names the catalog item it is an offer on (`merchant_suggested_asin`).
fn offer_issues(a: &Amazon, attributes: &Map<String, Value>) -> Vec<Value> {
    let asin = attributes
        .get("merchant_suggested_asin")
        .and_then(|v| v[0]["value"].as_str());
    if a.catalog.iter().any(|(x, _)| asin == Some(x.as_str())) {
        return Vec::new();
    }
    let m = "The offer names no catalog item (merchant_suggested_asin).";
    vec![issue("NO_MATCHING_ASIN", m.into(), None)]
}

/// `searchCatalogItems` by identifiers (catalogItems_2022-04-01.json): `marketplaceIds` required, `identifiersType`
/// required with `identifiers`; the catalog items whose EAN (or ASIN) is one of them.
fn search_catalog(a: &Amazon, call: &Call) -> Response {
    let (Some(_), Some(ids), Some(kind)) = (
        call.param("marketplaceIds"),
        call.param("identifiers"),
        call.param("identifiersType"),
    ) else {
        return error(
            400,
            "InvalidInput",
            "marketplaceIds, identifiers and identifiersType are required",
        );
    };
    let wanted: Vec<&str> = ids.split(',').collect();
    let items: Vec<Value> = a
        .catalog
        .iter()
        .filter(|(asin, ean)| match kind.as_str() {
            "EAN" | "GTIN" => wanted.contains(&ean.as_str()),
            "ASIN" => wanted.contains(&asin.as_str()),
            _ => false,
        })
        .map(|(asin, _)| json!({"asin": asin}))
        .collect();
    json_response(200, json!({"numberOfResults": items.len(), "items": items}))
}

fn patch(state: &mut State, call: &Call, sku: &str) -> Response {
    if let Some(detail) = check_body(state, call, &PATCH) {
        return error(400, "InvalidInput", &detail);
    }
    let body = call.json();
    let listing = state
        .amazon
        .listings
        .entry(sku.to_owned())
        .or_insert_with(|| json!({"productType": body["productType"], "attributes": {}}));
    for p in body["patches"].as_array().into_iter().flatten() {
        let Some(name) = p["path"]
            .as_str()
            .and_then(|x| x.strip_prefix("/attributes/"))
        else {
            return submission(
                sku,
                vec![issue("FAKE_PATH", format!("bad path {}", p["path"]), None)],
            );
        };
        let attributes = &mut listing["attributes"];
        match p["op"].as_str().unwrap_or_default() {
            "delete" => drop(attributes.as_object_mut().and_then(|a| a.remove(name))),
            "merge" => merge(&mut attributes[name], &p["value"]),
            _ => attributes[name] = p["value"].clone(),
        }
    }
    submission(sku, Vec::new())
}

/// JSON Patch `merge` of an attribute: each value's object merged into the one at the same index, keys not given
/// kept (so `fulfillment_availability`'s handling time survives a quantity update).
fn merge(target: &mut Value, value: &Value) {
    if !target.is_array() {
        *target = json!([]);
    }
    let Some(items) = target.as_array_mut() else {
        return;
    };
    for (i, v) in value.as_array().into_iter().flatten().enumerate() {
        match (
            items.get_mut(i).and_then(Value::as_object_mut),
            v.as_object(),
        ) {
            (Some(old), Some(new)) => old.extend(new.clone()),
            _ => items.push(v.clone()),
        }
    }
}

fn get(a: &Amazon, call: &Call, sku: &str) -> Response {
    let Some(listing) = a.listings.get(sku) else {
        return error(
            404,
            "NOT_FOUND",
            &format!("Requested item '{sku}' not found"),
        );
    };
    let included = call
        .param("includedData")
        .unwrap_or_else(|| "summaries".into());
    let mut item = json!({"sku": sku, "summaries": [{"marketplaceId": "ATVPDKIKX0DER", "productType": listing["productType"]}]});
    if included.split(',').any(|d| d == "attributes") {
        item["attributes"] = listing["attributes"].clone();
    }
    json_response(200, item)
}

/// `getDefinitionsProductType`: the product type's definition, whose JSON Schema is behind `schema.link`.
fn definition(a: &Amazon, call: &Call, name: &str, base: &str) -> Response {
    if call.param("marketplaceIds").is_none() {
        return error(400, "InvalidInput", "marketplaceIds is required");
    }
    if !a.product_types.contains_key(name) {
        return error(
            404,
            "NOT_FOUND",
            &format!("Product type '{name}' not found"),
        );
    }
    let link = json!({"link": {"resource": format!("{base}/fake-s3/product-types/{name}.json"), "verb": "GET"}, "checksum": "fake"});
    json_response(
        200,
        json!({"productType": name, "requirements": call.param("requirements").unwrap_or_else(|| "LISTING".into()),
               "requirementsEnforced": "ENFORCED", "locale": "DEFAULT", "marketplaceIds": ["ATVPDKIKX0DER"],
               "schema": link, "metaSchema": link, "propertyGroups": {},
               "productTypeVersion": {"version": "U1", "latest": true, "releaseCandidate": false}}),
    )
}

/// The JSON Schema of a product type (`{name}.json`): its required attributes and the ones it defines.
pub(super) fn schema_document(a: &Amazon, file: &str) -> Response {
    let name = file.trim_end_matches(".json");
    let Some(required) = a.product_types.get(name) else {
        return json_response(404, json!({"Code": "NoSuchKey"}));
    };
    let mut properties = Map::new();
    let defined = required
        .iter()
        .map(String::as_str)
        .chain(OFFER_ATTRIBUTES.iter().copied());
    for attribute in defined.chain([
        "item_name",
        "brand",
        "product_description",
        "main_product_image_locator",
    ]) {
        properties.insert(attribute.to_owned(), json!({"type": "array"}));
    }
    json_response(
        200,
        json!({"type": "object", "required": required, "properties": properties}),
    )
}

impl FakeChannels {
    /// A product type of the marketplace and the attributes its listings require.
    pub fn add_product_type(&self, name: &str, required: &[&str]) {
        let required = required.iter().map(|s| (*s).to_owned()).collect();
        self.lock()
            .amazon
            .product_types
            .insert(name.to_owned(), required);
    }

    /// A catalog item an offer-only listing can match, by ASIN or EAN.
    pub fn add_catalog_item(&self, asin: &str, ean: &str) {
        self.lock()
            .amazon
            .catalog
            .push((asin.to_owned(), ean.to_owned()));
    }

    /// The Amazon listing of a SKU as Amazon holds it (`{productType, attributes}`).
    pub fn amazon_listing(&self, sku: &str) -> Option<Value> {
        self.lock().amazon.listings.get(sku).cloned()
    }

    /// Put a listing in place (e.g. one with a handling time the seller set in Seller Central).
    pub fn set_amazon_listing(&self, sku: &str, product_type: &str, attributes: Value) {
        let listing = json!({"productType": product_type, "attributes": attributes});
        self.lock().amazon.listings.insert(sku.to_owned(), listing);
    }
}
