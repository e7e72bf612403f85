//! Amazon's side of the fake channels: Login with Amazon and the SP-API routes the adapter calls, held to the
//! published models (`connectors/fixtures/contracts/amazon-*.json`): listings with product types and a catalog
//! (`listings`), Orders API v2026-01-01 reads and the v0 shipment confirmation (`orders`).

mod listings;
mod orders;

use std::collections::HashMap;

use poem::Response;
use serde_json::{Value, json};

use crate::fake::{Call, State, json_response};

/// LWA client id the fake accepts.
pub const AMAZON_CLIENT_ID: &str = "amzn1.application-oa2-client.test";
/// LWA client secret the fake accepts.
pub const AMAZON_CLIENT_SECRET: &str = "amzn-client-secret-9f8e7d";
/// Refresh token the fake accepts.
pub const AMAZON_REFRESH_TOKEN: &str = "Atzr|refresh-token-3c2b1a";
/// The catalog item every fake starts with: the ASIN whose EAN is the test products' `gtin`.
pub const CATALOG_ASIN: &str = "B0TRAIL042";
/// The EAN of [`CATALOG_ASIN`].
pub const CATALOG_EAN: &str = "4006381333931";

/// What the fake Amazon holds.
pub(crate) struct Amazon {
    /// Listings by SKU: `{productType, attributes}` as the last accepted `PUT` and `PATCH`es left them.
    listings: HashMap<String, Value>,
    /// Product types the marketplace defines, with their required attributes.
    product_types: HashMap<String, Vec<String>>,
    /// Catalog items as `(ASIN, EAN)`: what an offer-only listing can match.
    catalog: Vec<(String, String)>,
    /// Orders (Orders API v2026-01-01 shape, every dataset included), oldest first.
    orders: Vec<Value>,
}

impl Default for Amazon {
    fn default() -> Self {
        Self {
            listings: HashMap::new(),
            product_types: HashMap::new(),
            catalog: vec![(CATALOG_ASIN.into(), CATALOG_EAN.into())],
            orders: Vec::new(),
        }
    }
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

/// Amazon's answer to `call`, or `None` when the path is not Amazon's. `base` is the fake's URL (product type
/// schemas are links to it, as Amazon's are presigned S3 links).
pub(crate) fn route(state: &mut State, call: &Call, base: &str) -> Option<Response> {
    let p = call.path.as_str();
    if call.method == "POST" && p == "/auth/o2/token" {
        return Some(token(state, call));
    }
    if let Some(name) = p.strip_prefix("/fake-s3/product-types/") {
        return Some(listings::schema_document(&state.amazon, name));
    }
    let sp_api = [
        "/listings/",
        "/orders/",
        "/sellers/",
        "/definitions/",
        "/catalog/",
    ];
    if !sp_api.iter().any(|prefix| p.starts_with(prefix)) {
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
    if p == "/sellers/v1/marketplaceParticipations" {
        return Some(json_response(
            200,
            json!({"payload": [{"marketplace": {"id": "ATVPDKIKX0DER"}, "participation": {"isParticipating": true}}]}),
        ));
    }
    listings::route(state, call, base)
        .or_else(|| orders::route(state, call))
        .or_else(|| Some(error(404, "NotFound", p)))
}

/// SP-API's error list.
pub(crate) fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"errors": [{"code": code, "message": message, "details": ""}]}),
    )
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
