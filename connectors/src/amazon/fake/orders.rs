//! The fake's Orders API: v2026-01-01 `searchOrders` and `getOrder` (query parameters checked as the model
//! states them, answers checked against its definitions, datasets only when `includedData` asks for them) and the
//! v0 `confirmShipment`, whose body must satisfy `ConfirmShipmentRequest`. The v0 reads (`getOrders`, `getOrder`),
//! deprecated, are not served.

use std::sync::LazyLock;

use poem::Response;
use poem::http::StatusCode;
use serde_json::{Value, json};

use super::{Amazon, error};
use crate::amazon::mapping::CARRIER_CODES;
use crate::fake::{Call, Contract, FakeChannels, State, check_body, json_response};

const CONFIRM_MODEL: &str =
    include_str!("../../../fixtures/contracts/amazon-orders-v0-confirm-shipment.json");
const ORDERS_MODEL: &str =
    include_str!("../../../fixtures/contracts/amazon-orders-2026-01-01.json");
static CONFIRM: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(CONFIRM_MODEL, "ConfirmShipmentRequest"));
static SEARCH_ANSWER: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(ORDERS_MODEL, "SearchOrdersResponse"));
static GET_ANSWER: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(ORDERS_MODEL, "GetOrderResponse"));

/// Orders per page (small, so pagination is exercised).
const PAGE: usize = 2;

/// The orders routes, or `None` for another path.
pub(super) fn route(state: &mut State, call: &Call) -> Option<Response> {
    let (m, p) = (call.method.as_str(), call.path.as_str());
    if m == "GET" && p == "/orders/2026-01-01/orders" {
        return Some(search(state, call));
    }
    if let Some(id) = p.strip_prefix("/orders/2026-01-01/orders/")
        && m == "GET"
    {
        return Some(get_order(state, call, id));
    }
    let id = p
        .strip_prefix("/orders/v0/orders/")?
        .strip_suffix("/shipmentConfirmation")?;
    Some(confirm(state, call, id))
}

/// An order as answered: only the datasets `includedData` asks for.
fn project(order: &Value, call: &Call) -> Value {
    let included = call.param("includedData").unwrap_or_default();
    let has = |d: &str| included.split(',').any(|x| x == d);
    let mut o = order.clone();
    let Some(map) = o.as_object_mut() else {
        return o;
    };
    for (field, dataset) in [
        ("fulfillment", "FULFILLMENT"),
        ("proceeds", "PROCEEDS"),
        ("packages", "PACKAGES"),
    ] {
        if !has(dataset) {
            map.remove(field);
        }
    }
    if !has("FULFILLMENT") {
        for item in map
            .get_mut("orderItems")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            item.as_object_mut().map(|i| i.remove("fulfillment"));
        }
    }
    o
}

/// Answer `body`, recording it as a violation when it breaks the model (a bug of the fake itself).
fn answer(state: &mut State, contract: &Contract, body: Value) -> Response {
    for v in contract.violations(&body) {
        state.violations.push(format!("fake answer: {v}"));
    }
    json_response(200, body)
}

/// `searchOrders`: exactly one of `createdAfter` and `lastUpdatedAfter`; a `paginationToken` only with the
/// parameters of the request that produced it.
fn search(state: &mut State, call: &Call) -> Response {
    let filter = match (call.param("createdAfter"), call.param("lastUpdatedAfter")) {
        (Some(t), None) => ("createdTime", t),
        (None, Some(t)) => ("lastUpdatedTime", t),
        _ => {
            return error(
                400,
                "InvalidInput",
                "Exactly one of createdAfter and lastUpdatedAfter is required.",
            );
        }
    };
    let per_page = call
        .param("maxResultsPerPage")
        .map_or(Some(100), |n| n.parse::<usize>().ok());
    if !per_page.is_some_and(|n| (1..=100).contains(&n)) {
        return error(
            400,
            "InvalidInput",
            "maxResultsPerPage must be between 1 and 100.",
        );
    }
    let key = format!("{}={}", filter.0, filter.1);
    let start = match call.param("paginationToken") {
        None => 0,
        Some(token) => match token.split_once('~') {
            Some((i, k)) if k == key => i.parse().unwrap_or(0),
            _ => {
                return error(
                    400,
                    "InvalidInput",
                    "paginationToken does not match the request's parameters.",
                );
            }
        },
    };
    let mut matching: Vec<&Value> = state
        .amazon
        .orders
        .iter()
        .filter(|o| o[filter.0].as_str().unwrap_or("") >= filter.1.as_str())
        .collect();
    matching.sort_by(|a, b| a[filter.0].as_str().cmp(&b[filter.0].as_str()));
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|o| project(o, call))
        .collect();
    let mut body = json!({"orders": page, "lastUpdatedBefore": "2026-11-23T12:00:00Z"});
    if start + PAGE < matching.len() {
        body["pagination"] = json!({"nextToken": format!("{}~{key}", start + PAGE)});
    }
    answer(state, &SEARCH_ANSWER, body)
}

fn get_order(state: &mut State, call: &Call, id: &str) -> Response {
    let Some(order) = state.amazon.orders.iter().find(|o| o["orderId"] == id) else {
        return error(404, "NotFound", &format!("Order {id} not found."));
    };
    let body = json!({"order": project(order, call)});
    answer(state, &GET_ANSWER, body)
}

/// `confirmShipment`: a new `packageReferenceId` adds a package, a known one edits it; an order whose items are all
/// shipped takes no new package.
fn confirm(state: &mut State, call: &Call, id: &str) -> Response {
    if call.method != "POST" {
        return error(405, "MethodNotAllowed", &call.path);
    }
    if let Some(detail) = check_body(state, call, &CONFIRM) {
        return error(400, "InvalidInput", &detail);
    }
    let package = call.json()["packageDetail"].clone();
    let code = package["carrierCode"].as_str().unwrap_or_default();
    if !CARRIER_CODES.contains(&code) && code != "Other" {
        return error(400, "InvalidInput", &format!("Invalid carrierCode {code}."));
    }
    let Some(order) = state.amazon.orders.iter_mut().find(|o| o["orderId"] == id) else {
        return error(404, "NotFound", &format!("Order {id} not found."));
    };
    if let Some(why) = add_package(order, &package) {
        return error(400, "InvalidInput", &why);
    }
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}

/// Record `package` on `order` and update its status; why not, when it cannot be.
fn add_package(order: &mut Value, package: &Value) -> Option<String> {
    let items: Vec<Value> = package["orderItems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let known = |i: &Value| {
        order["orderItems"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["orderItemId"] == i["orderItemId"])
    };
    if let Some(unknown) = items.iter().find(|i| !known(i)) {
        return Some(format!(
            "Order item {} is not in the order.",
            unknown["orderItemId"]
        ));
    }
    let reference = package["packageReferenceId"].clone();
    let shipped_before = order["fulfillment"]["fulfillmentStatus"] == "SHIPPED";
    let packages = order["packages"].as_array_mut()?;
    let edited = packages
        .iter()
        .position(|p| p["packageReferenceId"] == reference);
    if edited.is_none() && shipped_before {
        return Some("The order is already shipped.".into());
    }
    let record = json!({"packageReferenceId": reference, "carrier": package["carrierCode"],
        "trackingNumber": package["trackingNumber"], "shipTime": package["shipDate"],
        "packageItems": package["orderItems"]});
    match edited {
        Some(i) => packages[i] = record,
        None => packages.push(record),
    }
    let shipped: i64 = packages
        .iter()
        .flat_map(|p| p["packageItems"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["quantity"].as_i64())
        .sum();
    let ordered: i64 = order["orderItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["quantityOrdered"].as_i64())
        .sum();
    let status = if shipped >= ordered {
        "SHIPPED"
    } else {
        "PARTIALLY_SHIPPED"
    };
    order["fulfillment"]["fulfillmentStatus"] = json!(status);
    order["lastUpdatedTime"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    None
}

impl Amazon {
    fn order_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.orders.iter_mut().find(|o| o["orderId"] == id)
    }
}

impl FakeChannels {
    /// An unshipped merchant-fulfilled Amazon order of one item (`item-1`, SKU `TS-42`), created at `created`.
    pub fn add_order(&self, id: &str, created: &str) {
        self.lock().amazon.orders.push(json!({
            "orderId": id, "createdTime": created, "lastUpdatedTime": created,
            "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER", "marketplaceName": "Amazon.com"},
            "proceeds": {"grandTotal": {"amount": "42.00", "currencyCode": "USD"}},
            "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
            "orderItems": [{"orderItemId": "item-1", "quantityOrdered": 1, "product": {"sellerSku": "TS-42"},
                            "fulfillment": {"quantityFulfilled": 0, "quantityUnfulfilled": 1}}],
            "packages": []
        }));
    }

    /// Change an order's status (`PENDING`, `UNSHIPPED`, `CANCELLED`…) as of `updated`.
    pub fn set_order_status(&self, id: &str, status: &str, updated: &str) {
        let mut state = self.lock();
        if let Some(order) = state.amazon.order_mut(id) {
            order["fulfillment"]["fulfillmentStatus"] = json!(status);
            order["lastUpdatedTime"] = json!(updated);
        }
    }

    /// An Amazon order as the fake holds it (every dataset).
    pub fn amazon_order(&self, id: &str) -> Option<Value> {
        self.lock().amazon.order_mut(id).map(|o| o.clone())
    }
}
