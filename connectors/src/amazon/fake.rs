//! Amazon's side of the fake channels: Login with Amazon and the SP-API routes the adapter calls (listings,
//! marketplace participations, orders with `NextToken` pages, shipment confirmations).

use std::collections::HashSet;

use poem::Response;
use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::fake::{Call, FakeChannels, State, json_response};

/// LWA client id the fake accepts.
pub const AMAZON_CLIENT_ID: &str = "amzn1.application-oa2-client.test";
/// LWA client secret the fake accepts.
pub const AMAZON_CLIENT_SECRET: &str = "amzn-client-secret-9f8e7d";
/// Refresh token the fake accepts.
pub const AMAZON_REFRESH_TOKEN: &str = "Atzr|refresh-token-3c2b1a";

/// Orders per page (small, so pagination is exercised).
const ORDER_PAGE: usize = 2;

/// The fake's orders and which of them were confirmed as shipped.
#[derive(Default)]
pub(crate) struct Orders {
    orders: Vec<Value>,
    shipped: HashSet<String>,
}

/// `[connectors.amazon]` keys pointing at the fake at `base`.
pub(crate) fn endpoints(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("amazon.lwa_endpoint", format!("{base}/auth/o2/token")),
        ("amazon.sp_api_na", base.to_owned()),
        ("amazon.sp_api_eu", base.to_owned()),
        ("amazon.sp_api_fe", base.to_owned()),
    ]
}

/// Amazon's answer to `call`, or `None` when the path is not Amazon's.
pub(crate) fn route(state: &mut State, call: &Call) -> Option<Response> {
    let p = call.path.as_str();
    if call.method == "POST" && p == "/auth/o2/token" {
        return Some(token(state, call));
    }
    if !(p.starts_with("/listings/") || p.starts_with("/orders/") || p.starts_with("/sellers/")) {
        return None;
    }
    if !call
        .header("x-amz-access-token")
        .starts_with("Atza|access-")
    {
        return Some(json_response(
            403,
            json!({"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]}),
        ));
    }
    Some(api(state, call))
}

fn token(state: &mut State, call: &Call) -> Response {
    let f = call.form();
    let ok = f.get("grant_type").map(String::as_str) == Some("refresh_token")
        && f.get("client_id").map(String::as_str) == Some(AMAZON_CLIENT_ID)
        && f.get("client_secret").map(String::as_str) == Some(AMAZON_CLIENT_SECRET)
        && f.get("refresh_token").map(String::as_str) == Some(AMAZON_REFRESH_TOKEN);
    if !ok {
        return json_response(
            400,
            json!({"error": "invalid_grant", "error_description": "bad credentials"}),
        );
    }
    state.tokens += 1;
    json_response(
        200,
        json!({"access_token": format!("Atza|access-{}", state.tokens), "token_type": "bearer", "expires_in": 3600}),
    )
}

fn api(state: &mut State, call: &Call) -> Response {
    let (m, p) = (call.method.as_str(), call.path.as_str());
    if p.starts_with("/listings/2021-08-01/items/") && (m == "PUT" || m == "PATCH") {
        return listing(call);
    }
    if p == "/sellers/v1/marketplaceParticipations" {
        return json_response(
            200,
            json!({"payload": [{"marketplace": {"id": "ATVPDKIKX0DER"}, "participation": {"isParticipating": true}}]}),
        );
    }
    if p == "/orders/v0/orders" && m == "GET" {
        return orders_page(&state.amazon, call);
    }
    if let Some(rest) = p.strip_prefix("/orders/v0/orders/") {
        return order(&mut state.amazon, m, rest);
    }
    json_response(404, json!({"errors": [{"code": "NotFound", "message": p}]}))
}

fn listing(call: &Call) -> Response {
    let sku = call.path.rsplit('/').next().unwrap_or_default();
    if call.param("marketplaceIds").is_none() {
        return json_response(
            400,
            json!({"errors": [{"code": "InvalidInput", "message": "marketplaceIds required"}]}),
        );
    }
    json_response(
        200,
        json!({"sku": sku, "status": "ACCEPTED", "submissionId": "f1dc2914", "issues": []}),
    )
}

/// `GET /orders/v0/orders`: a page from `CreatedAfter`, or the page a `NextToken` names.
fn orders_page(orders: &Orders, call: &Call) -> Response {
    let (start, after) = match (call.param("NextToken"), call.param("CreatedAfter")) {
        (Some(token), _) => {
            let (i, after) = token.split_once('|').unwrap_or(("0", ""));
            (i.parse().unwrap_or(0), after.to_owned())
        }
        (None, Some(after)) => (0, after),
        (None, None) => {
            return json_response(
                400,
                json!({"errors": [{"code": "InvalidInput", "message": "CreatedAfter or NextToken required"}]}),
            );
        }
    };
    let matching: Vec<&Value> = orders
        .orders
        .iter()
        .filter(|o| o["PurchaseDate"].as_str().unwrap_or("") >= after.as_str())
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(ORDER_PAGE)
        .map(|o| (*o).clone())
        .collect();
    let mut payload = json!({"Orders": page, "CreatedBefore": "2026-11-23T12:00:00Z"});
    if start + ORDER_PAGE < matching.len() {
        payload["NextToken"] = json!(format!("{}|{after}", start + ORDER_PAGE));
    }
    json_response(200, json!({"payload": payload}))
}

/// `GET /orders/v0/orders/{id}` and `POST …/{id}/shipmentConfirmation` (a second confirmation is refused).
fn order(orders: &mut Orders, method: &str, rest: &str) -> Response {
    if let Some(order_id) = rest.strip_suffix("/shipmentConfirmation") {
        if method != "POST" {
            return json_response(405, json!({}));
        }
        if !orders.shipped.insert(order_id.to_owned()) {
            return json_response(
                400,
                json!({"errors": [{"code": "InvalidInput", "message": "order already shipped"}]}),
            );
        }
        return Response::builder().status(StatusCode::NO_CONTENT).finish();
    }
    let status = if orders.shipped.contains(rest) {
        "Shipped"
    } else {
        "Unshipped"
    };
    json_response(
        200,
        json!({"payload": {"AmazonOrderId": rest, "OrderStatus": status}}),
    )
}

impl FakeChannels {
    /// An Amazon order (Orders API v0 shape).
    pub fn add_order(&self, id: &str, purchase_date: &str) {
        self.lock().amazon.orders.push(json!({
            "AmazonOrderId": id, "PurchaseDate": purchase_date, "LastUpdateDate": purchase_date,
            "OrderStatus": "Unshipped", "FulfillmentChannel": "MFN", "MarketplaceId": "ATVPDKIKX0DER",
            "OrderTotal": {"CurrencyCode": "USD", "Amount": "42.00"}, "NumberOfItemsUnshipped": 1
        }));
    }
}
