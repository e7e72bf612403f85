//! eBay's side of the fake channels: the OAuth refresh-token grant and the Sell Inventory routes the adapter
//! calls, bodies held to `connectors/fixtures/contracts/ebay-sell-inventory-v1.json`. It keeps inventory items and
//! offers as eBay does: a create-or-replace replaces the whole item (availability included); the quantity a listing
//! shows is the smaller of the item's and the offer's (bulk-update guide); `bulkUpdatePriceQuantity` revises
//! published offers only; bulk calls answer 207 with per-item errors when some fail; `getOffers` answers 404 for a
//! SKU without offers.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::Response;
use serde_json::{Value, json};

use crate::fake::{Call, Contract, FakeChannels, State, check_body, json_response};

/// OAuth client id the fake accepts.
pub const EBAY_CLIENT_ID: &str = "ShopStar-Test-PRD-1a2b3c";
/// OAuth client secret the fake accepts.
pub const EBAY_CLIENT_SECRET: &str = "PRD-ebay-cert-4d5e6f";
/// Refresh token the fake accepts.
pub const EBAY_REFRESH_TOKEN: &str = "v^1.1#i^1#r^1#refresh-7g8h9i";

const SPEC: &str = include_str!("../../fixtures/contracts/ebay-sell-inventory-v1.json");
static CREATE_OR_REPLACE: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(SPEC, "BulkInventoryItem"));
static PRICE_QUANTITY: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(SPEC, "BulkPriceQuantity"));
static GET_ITEMS: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(SPEC, "BulkGetInventoryItem"));

/// One offer of a SKU.
#[derive(Debug, Clone)]
struct Offer {
    id: String,
    published: bool,
    available_quantity: Option<i64>,
    price: Option<Value>,
}

/// eBay's inventory items (by SKU, as last written) and offers (by SKU).
#[derive(Default)]
pub(crate) struct Ebay {
    items: HashMap<String, Value>,
    offers: HashMap<String, Vec<Offer>>,
}

impl Ebay {
    fn item_quantity(&self, sku: &str) -> i64 {
        self.items.get(sku).map_or(0, |i| {
            i["availability"]["shipToLocationAvailability"]["quantity"]
                .as_i64()
                .unwrap_or(0)
        })
    }
}

/// `[connectors.ebay]` keys pointing at the fake at `base`.
pub(crate) fn endpoints(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ebay.api", base.to_owned()),
        ("ebay.token_url", format!("{base}/identity/v1/oauth2/token")),
    ]
}

/// eBay's answer to `call`, or `None` when the path is not eBay's.
pub(crate) fn route(state: &mut State, call: &Call) -> Option<Response> {
    let p = call.path.as_str();
    if call.method == "POST" && p == "/identity/v1/oauth2/token" {
        return Some(token(state, call));
    }
    if !p.starts_with("/sell/") {
        return None;
    }
    if !call
        .header("authorization")
        .starts_with("Bearer v^1.1#access-")
    {
        return Some(error(401, 1001, "Invalid access token"));
    }
    Some(api(state, call))
}

fn error(status: u16, error_id: u32, message: &str) -> Response {
    json_response(
        status,
        json!({"errors": [{"errorId": error_id, "domain": "API_INVENTORY", "category": "REQUEST", "message": message}]}),
    )
}

fn token(state: &mut State, call: &Call) -> Response {
    let basic = STANDARD.encode(format!("{EBAY_CLIENT_ID}:{EBAY_CLIENT_SECRET}"));
    let f = call.form();
    let ok = call.header("authorization") == format!("Basic {basic}")
        && f.get("grant_type").map(String::as_str) == Some("refresh_token")
        && f.get("refresh_token").map(String::as_str) == Some(EBAY_REFRESH_TOKEN)
        && f.get("scope").is_some_and(|s| s.contains("sell.inventory"));
    if !ok {
        return json_response(401, json!({"error": "invalid_client"}));
    }
    state.tokens += 1;
    json_response(
        200,
        json!({"access_token": format!("v^1.1#access-{}", state.tokens), "expires_in": 7200, "token_type": "User Access Token"}),
    )
}

fn api(state: &mut State, call: &Call) -> Response {
    let (m, p) = (call.method.as_str(), call.path.as_str());
    let bulk = [
        (
            "/bulk_create_or_replace_inventory_item",
            &*CREATE_OR_REPLACE,
        ),
        ("/bulk_update_price_quantity", &*PRICE_QUANTITY),
        ("/bulk_get_inventory_item", &*GET_ITEMS),
    ];
    if let Some((suffix, contract)) = bulk
        .iter()
        .find(|(s, _)| p.ends_with(s))
        .filter(|_| m == "POST")
    {
        if call.header("content-language").is_empty() && !suffix.contains("get") {
            return error(400, 25709, "Content-Language required");
        }
        if let Some(detail) = check_body(state, call, contract) {
            return error(400, 2004, &format!("Invalid request: {detail}"));
        }
        let requests = call.json()["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let responses: Vec<Value> = match *suffix {
            "/bulk_create_or_replace_inventory_item" => requests
                .iter()
                .map(|r| replace_item(&mut state.ebay, r))
                .collect(),
            "/bulk_update_price_quantity" => requests
                .iter()
                .flat_map(|r| price_quantity(&mut state.ebay, r))
                .collect(),
            _ => requests.iter().map(|r| get_item(&state.ebay, r)).collect(),
        };
        let all_ok = responses.iter().all(|r| r["statusCode"] == 200);
        return json_response(
            if all_ok { 200 } else { 207 },
            json!({"responses": responses}),
        );
    }
    if m == "GET" && p == "/sell/inventory/v1/offer" {
        return offers(&state.ebay, call);
    }
    if m == "GET" && p == "/sell/inventory/v1/inventory_item" {
        return json_response(
            200,
            json!({"total": state.ebay.items.len(), "inventoryItems": []}),
        );
    }
    error(404, 2002, p)
}

fn replace_item(e: &mut Ebay, r: &Value) -> Value {
    let sku = r["sku"].as_str().unwrap_or_default().to_owned();
    e.items.insert(sku.clone(), r.clone());
    json!({"statusCode": 200, "sku": sku, "locale": r["locale"]})
}

fn get_item(e: &Ebay, r: &Value) -> Value {
    let sku = r["sku"].as_str().unwrap_or_default();
    match e.items.get(sku) {
        Some(item) => json!({"statusCode": 200, "sku": sku, "inventoryItem": item}),
        None => {
            json!({"statusCode": 404, "sku": sku, "errors": [{"errorId": 25702, "message": format!("SKU {sku} is not available in the system.")}]})
        }
    }
}

/// One `PriceQuantity`: its item's quantity, then each offer (published ones only).
fn price_quantity(e: &mut Ebay, r: &Value) -> Vec<Value> {
    let sku = r["sku"].as_str().unwrap_or_default().to_owned();
    let mut out = Vec::new();
    if let Some(q) = r["shipToLocationAvailability"]["quantity"].as_i64() {
        match e.items.get_mut(&sku) {
            Some(item) => {
                item["availability"]["shipToLocationAvailability"]["quantity"] = json!(q);
                out.push(json!({"statusCode": 200, "sku": sku}));
            }
            None => out.push(json!({"statusCode": 404, "sku": sku, "errors": [{"errorId": 25702, "message": format!("SKU {sku} is not available in the system.")}]})),
        }
    }
    for o in r["offers"].as_array().into_iter().flatten() {
        let id = o["offerId"].as_str().unwrap_or_default();
        let offer = e
            .offers
            .get_mut(&sku)
            .and_then(|os| os.iter_mut().find(|x| x.id == id));
        let answer = match offer {
            None => {
                json!({"statusCode": 404, "sku": sku, "offerId": id, "errors": [{"errorId": 25713, "message": "This Offer is not available."}]})
            }
            Some(x) if !x.published => {
                json!({"statusCode": 400, "sku": sku, "offerId": id, "errors": [{"errorId": 25099, "message": "(fake) bulkUpdatePriceQuantity does not work with unpublished offers; use updateOffer."}]})
            }
            Some(x) => {
                x.available_quantity = o["availableQuantity"].as_i64().or(x.available_quantity);
                x.price = o.get("price").cloned().or(x.price.take());
                json!({"statusCode": 200, "sku": sku, "offerId": id})
            }
        };
        out.push(answer);
    }
    out
}

/// `GET /sell/inventory/v1/offer?sku=`: the SKU's offers with their status, or 404 when it has none.
fn offers(e: &Ebay, call: &Call) -> Response {
    let sku = call.param("sku").unwrap_or_default();
    match e.offers.get(&sku).filter(|o| !o.is_empty()) {
        Some(list) => {
            let offers: Vec<Value> = list
                .iter()
                .map(|o| json!({"offerId": o.id, "sku": sku, "marketplaceId": "EBAY_US", "format": "FIXED_PRICE",
                    "status": if o.published { "PUBLISHED" } else { "UNPUBLISHED" },
                    "availableQuantity": o.available_quantity, "pricingSummary": {"price": o.price}}))
                .collect();
            json_response(
                200,
                json!({"offers": offers, "total": offers.len(), "size": offers.len()}),
            )
        }
        None => error(404, 25713, "This Offer is not available."),
    }
}

impl FakeChannels {
    /// Published eBay offers of a SKU (live listings).
    pub fn set_offers(&self, sku: &str, offer_ids: &[&str]) {
        for id in offer_ids {
            self.add_offer(sku, id, true, None);
        }
    }

    /// An offer of a SKU: published (a live listing) or not, with its own available quantity when set.
    pub fn add_offer(&self, sku: &str, id: &str, published: bool, available_quantity: Option<i64>) {
        let offer = Offer {
            id: id.to_owned(),
            published,
            available_quantity,
            price: None,
        };
        self.lock()
            .ebay
            .offers
            .entry(sku.to_owned())
            .or_default()
            .push(offer);
    }

    /// An inventory item already on eBay with `quantity` to ship.
    pub fn set_inventory_item(&self, sku: &str, quantity: i64) {
        let item = json!({"sku": sku, "locale": "en_US", "product": {"title": sku},
            "availability": {"shipToLocationAvailability": {"quantity": quantity}}});
        self.lock().ebay.items.insert(sku.to_owned(), item);
    }

    /// The quantity eBay shows on the SKU's published listing: the smaller of the item's and the offer's.
    pub fn ebay_listed_quantity(&self, sku: &str) -> Option<i64> {
        let state = self.lock();
        let item = state.ebay.item_quantity(sku);
        let offer = state.ebay.offers.get(sku)?.iter().find(|o| o.published)?;
        Some(offer.available_quantity.map_or(item, |q| q.min(item)))
    }

    /// An eBay offer's price as last set (`{value, currency}`).
    pub fn ebay_offer_price(&self, sku: &str, id: &str) -> Option<Value> {
        let state = self.lock();
        state
            .ebay
            .offers
            .get(sku)?
            .iter()
            .find(|o| o.id == id)?
            .price
            .clone()
    }
}
