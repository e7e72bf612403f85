//! eBay's side of the fake channels: the OAuth refresh-token grant and the Sell Inventory routes the adapter
//! calls (bulk multi-status answers, 404 for a SKU without offers).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::Response;
use serde_json::{Value, json};

use crate::fake::{Call, FakeChannels, State, json_response};

/// OAuth client id the fake accepts.
pub const EBAY_CLIENT_ID: &str = "ShopStar-Test-PRD-1a2b3c";
/// OAuth client secret the fake accepts.
pub const EBAY_CLIENT_SECRET: &str = "PRD-ebay-cert-4d5e6f";
/// Refresh token the fake accepts.
pub const EBAY_REFRESH_TOKEN: &str = "v^1.1#i^1#r^1#refresh-7g8h9i";

/// Offer ids by SKU.
pub(crate) type Offers = HashMap<String, Vec<String>>;

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
        return Some(json_response(
            401,
            json!({"errors": [{"errorId": 1001, "message": "Invalid access token"}]}),
        ));
    }
    Some(api(&state.ebay, call))
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

fn api(offers: &Offers, call: &Call) -> Response {
    let p = call.path.as_str();
    if call.method == "POST"
        && (p.ends_with("/bulk_create_or_replace_inventory_item")
            || p.ends_with("/bulk_update_price_quantity"))
    {
        return bulk(call);
    }
    if call.method == "GET" && p == "/sell/inventory/v1/offer" {
        return offer(offers, call);
    }
    if call.method == "GET" && p == "/sell/inventory/v1/inventory_item" {
        return json_response(200, json!({"total": 0, "inventoryItems": []}));
    }
    json_response(404, json!({"errors": [{"errorId": 2002, "message": p}]}))
}

/// A bulk call: 1-25 requests with `Content-Language`, each answered 200.
fn bulk(call: &Call) -> Response {
    if call.header("content-language").is_empty() {
        return json_response(
            400,
            json!({"errors": [{"errorId": 25709, "message": "Content-Language required"}]}),
        );
    }
    let body = call.json();
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() || requests.len() > 25 {
        return json_response(
            400,
            json!({"errors": [{"errorId": 25001, "message": "1-25 requests"}]}),
        );
    }
    let responses: Vec<Value> = requests
        .iter()
        .map(|r| json!({"statusCode": 200, "sku": r["sku"], "locale": r["locale"]}))
        .collect();
    json_response(200, json!({"responses": responses}))
}

/// `GET /sell/inventory/v1/offer?sku=`: the SKU's offers, or 404 when it has none.
fn offer(offers: &Offers, call: &Call) -> Response {
    let sku = call.param("sku").unwrap_or_default();
    match offers.get(&sku) {
        Some(ids) => {
            let offers: Vec<Value> = ids
                .iter()
                .map(|id| json!({"offerId": id, "sku": sku, "marketplaceId": "EBAY_US"}))
                .collect();
            json_response(200, json!({"offers": offers, "total": offers.len()}))
        }
        None => json_response(
            404,
            json!({"errors": [{"errorId": 25713, "message": "This Offer is not available."}]}),
        ),
    }
}

impl FakeChannels {
    /// eBay offers of a SKU.
    pub fn set_offers(&self, sku: &str, offer_ids: &[&str]) {
        let ids = offer_ids.iter().map(|s| (*s).to_owned()).collect();
        self.lock().ebay.insert(sku.to_owned(), ids);
    }
}
