//! A local fake of the three channels' APIs: Amazon SP-API with LWA, eBay Sell Inventory with OAuth, and Google
//! Merchant API with the OAuth JWT bearer grant. It checks auth the way the real services do, answers in their
//! shapes (pagination with NextToken, bulk multi-status answers, 404 for a SKU without offers), records every
//! request, and can be told to fail the next N matching requests with a status and `Retry-After`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::{Value, json};

/// Credentials the fake accepts.
pub const AMAZON_CLIENT_ID: &str = "amzn1.application-oa2-client.test";
pub const AMAZON_CLIENT_SECRET: &str = "amzn-client-secret-9f8e7d";
pub const AMAZON_REFRESH_TOKEN: &str = "Atzr|refresh-token-3c2b1a";
pub const EBAY_CLIENT_ID: &str = "ShopStar-Test-PRD-1a2b3c";
pub const EBAY_CLIENT_SECRET: &str = "PRD-ebay-cert-4d5e6f";
pub const EBAY_REFRESH_TOKEN: &str = "v^1.1#i^1#r^1#refresh-7g8h9i";
pub const GOOGLE_CLIENT_EMAIL: &str = "feed@shopstar-test.iam.gserviceaccount.com";

/// The test service account's private key (tests/fixtures).
pub fn google_private_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/google-test-service-account.pem"
    ))
    .expect("fixture key")
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Call {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    /// `METHOD /path` for assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

struct Failure {
    path_contains: String,
    remaining: u32,
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    failures: Vec<Failure>,
    orders: Vec<Value>,
    shipped: HashSet<String>,
    offers: HashMap<String, Vec<String>>,
    tokens: u32,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    public_key: Arc<Vec<u8>>,
    base: Arc<String>,
}

/// The fake; `url()` is the base URL of every channel API and token endpoint.
pub struct FakeChannels {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// Orders per page (small, so pagination is exercised).
const ORDER_PAGE: usize = 2;

#[handler]
async fn any(req: &Request, body: Vec<u8>, shared: Data<&Shared>) -> Response {
    let call = Call {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body,
        at: Instant::now(),
    };
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    state.calls.push(call.clone());
    let is_token = call.path.ends_with("/token");
    if !is_token
        && let Some(f) = state
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && call.path.contains(&f.path_contains))
    {
        f.remaining -= 1;
        let mut r = json_response(
            f.status,
            json!({"errors": [{"code": "Fake", "message": format!("forced {}", f.status)}]}),
        );
        if let Some(secs) = f.retry_after {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().expect("header"));
        }
        return r;
    }
    route(&mut state, &call, &shared)
}

fn route(state: &mut State, call: &Call, shared: &Shared) -> Response {
    let (m, p) = (call.method.as_str(), call.path.as_str());
    // Token endpoints.
    if m == "POST" && p == "/auth/o2/token" {
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
        return json_response(
            200,
            json!({"access_token": format!("Atza|access-{}", state.tokens), "token_type": "bearer", "expires_in": 3600}),
        );
    }
    if m == "POST" && p == "/identity/v1/oauth2/token" {
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
        return json_response(
            200,
            json!({"access_token": format!("v^1.1#access-{}", state.tokens), "expires_in": 7200, "token_type": "User Access Token"}),
        );
    }
    if m == "POST" && p == "/token" {
        return google_token(state, call, shared);
    }
    // Amazon SP-API.
    if p.starts_with("/listings/") || p.starts_with("/orders/") || p.starts_with("/sellers/") {
        if !call
            .header("x-amz-access-token")
            .starts_with("Atza|access-")
        {
            return json_response(
                403,
                json!({"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]}),
            );
        }
        return amazon(state, call);
    }
    // eBay.
    if p.starts_with("/sell/") {
        if !call
            .header("authorization")
            .starts_with("Bearer v^1.1#access-")
        {
            return json_response(
                401,
                json!({"errors": [{"errorId": 1001, "message": "Invalid access token"}]}),
            );
        }
        return ebay(state, call);
    }
    // Google Merchant API.
    if p.starts_with("/products/v1/") || p.starts_with("/accounts/v1/") {
        if !call
            .header("authorization")
            .starts_with("Bearer ya29.access-")
        {
            return json_response(
                401,
                json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
            );
        }
        if m == "GET" {
            return json_response(
                200,
                json!({"name": p.trim_start_matches("/accounts/v1/"), "accountName": "Fake Merchant"}),
            );
        }
        let mut input = call.json();
        input["name"] = json!(format!(
            "accounts/123/productInputs/en~US~{}",
            input["offerId"].as_str().unwrap_or("")
        ));
        return json_response(200, input);
    }
    json_response(404, json!({"error": "no such fake route", "path": p}))
}

fn google_token(state: &mut State, call: &Call, shared: &Shared) -> Response {
    let f = call.form();
    let refuse = |why: &str| {
        json_response(
            400,
            json!({"error": "invalid_grant", "error_description": why}),
        )
    };
    if f.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse("grant_type");
    }
    let Some(jwt) = f.get("assertion") else {
        return refuse("no assertion");
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return refuse("not a JWT");
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let Ok(signature) = URL_SAFE_NO_PAD.decode(parts[2]) else {
        return refuse("signature encoding");
    };
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        shared.public_key.as_slice(),
    );
    if key.verify(signed.as_bytes(), &signature).is_err() {
        return refuse("Invalid JWT Signature.");
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let claims: Value = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let aud = format!("{}/token", shared.base);
    let ok = header["alg"] == "RS256"
        && claims["iss"] == GOOGLE_CLIENT_EMAIL
        && claims["aud"] == aud.as_str()
        && claims["scope"] == "https://www.googleapis.com/auth/content"
        && claims["exp"]
            .as_i64()
            .zip(claims["iat"].as_i64())
            .is_some_and(|(e, i)| e - i <= 3600 && e > i);
    if !ok {
        return refuse("claims");
    }
    state.tokens += 1;
    json_response(
        200,
        json!({"access_token": format!("ya29.access-{}", state.tokens), "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn amazon(state: &mut State, call: &Call) -> Response {
    let (m, p) = (call.method.as_str(), call.path.as_str());
    if p.starts_with("/listings/2021-08-01/items/") && (m == "PUT" || m == "PATCH") {
        let sku = p.rsplit('/').next().unwrap_or_default();
        if call.param("marketplaceIds").is_none() {
            return json_response(
                400,
                json!({"errors": [{"code": "InvalidInput", "message": "marketplaceIds required"}]}),
            );
        }
        return json_response(
            200,
            json!({"sku": sku, "status": "ACCEPTED", "submissionId": "f1dc2914", "issues": []}),
        );
    }
    if p == "/sellers/v1/marketplaceParticipations" {
        return json_response(
            200,
            json!({"payload": [{"marketplace": {"id": "ATVPDKIKX0DER"}, "participation": {"isParticipating": true}}]}),
        );
    }
    if p == "/orders/v0/orders" && m == "GET" {
        let (start, after) = match call.param("NextToken") {
            Some(token) => {
                let (i, after) = token.split_once('|').unwrap_or(("0", ""));
                (i.parse().unwrap_or(0), after.to_owned())
            }
            None => match call.param("CreatedAfter") {
                Some(after) => (0, after),
                None => {
                    return json_response(
                        400,
                        json!({"errors": [{"code": "InvalidInput", "message": "CreatedAfter or NextToken required"}]}),
                    );
                }
            },
        };
        let matching: Vec<&Value> = state
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
        return json_response(200, json!({"payload": payload}));
    }
    if let Some(rest) = p.strip_prefix("/orders/v0/orders/") {
        if let Some(order_id) = rest.strip_suffix("/shipmentConfirmation") {
            if m != "POST" {
                return json_response(405, json!({}));
            }
            if !state.shipped.insert(order_id.to_owned()) {
                return json_response(
                    400,
                    json!({"errors": [{"code": "InvalidInput", "message": "order already shipped"}]}),
                );
            }
            return Response::builder().status(StatusCode::NO_CONTENT).finish();
        }
        let status = if state.shipped.contains(rest) {
            "Shipped"
        } else {
            "Unshipped"
        };
        return json_response(
            200,
            json!({"payload": {"AmazonOrderId": rest, "OrderStatus": status}}),
        );
    }
    json_response(404, json!({"errors": [{"code": "NotFound", "message": p}]}))
}

fn ebay(state: &mut State, call: &Call) -> Response {
    let p = call.path.as_str();
    if call.method == "POST"
        && (p.ends_with("/bulk_create_or_replace_inventory_item")
            || p.ends_with("/bulk_update_price_quantity"))
    {
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
        return json_response(200, json!({"responses": responses}));
    }
    if call.method == "GET" && p == "/sell/inventory/v1/offer" {
        let sku = call.param("sku").unwrap_or_default();
        return match state.offers.get(&sku) {
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
        };
    }
    if call.method == "GET" && p == "/sell/inventory/v1/inventory_item" {
        return json_response(200, json!({"total": 0, "inventoryItems": []}));
    }
    json_response(404, json!({"errors": [{"errorId": 2002, "message": p}]}))
}

impl FakeChannels {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let der: Vec<u8> = {
            let pem = google_private_key();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            STANDARD.decode(b64).expect("fixture is PEM")
        };
        let key =
            aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).expect("fixture is PKCS#8 RSA");
        let public_key = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Shared {
            state: state.clone(),
            public_key: Arc::new(public_key),
            base: Arc::new(format!("http://{addr}")),
        };
        let app = Route::new().at("/*path", any).data(shared);
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The channel endpoints of a deployment whose every channel is this fake, as `(config key, URL)`.
    pub fn endpoints(&self) -> Vec<(&'static str, String)> {
        let base = self.url();
        vec![
            ("amazon.lwa_endpoint", format!("{base}/auth/o2/token")),
            ("amazon.sp_api_na", base.clone()),
            ("amazon.sp_api_eu", base.clone()),
            ("amazon.sp_api_fe", base.clone()),
            ("ebay.api", base.clone()),
            ("ebay.token_url", format!("{base}/identity/v1/oauth2/token")),
            ("google_shopping.api", base.clone()),
            ("google_shopping.token_url", format!("{base}/token")),
        ]
    }

    /// Point `config`'s channel endpoints (deployment configuration) at this fake.
    pub fn configure(&self, config: &mut integration_service::config::Config) {
        let c = &mut config.connectors;
        for (key, url) in self.endpoints() {
            let slot = match key {
                "amazon.lwa_endpoint" => &mut c.amazon.lwa_endpoint,
                "amazon.sp_api_na" => &mut c.amazon.sp_api_na,
                "amazon.sp_api_eu" => &mut c.amazon.sp_api_eu,
                "amazon.sp_api_fe" => &mut c.amazon.sp_api_fe,
                "ebay.api" => &mut c.ebay.api,
                "ebay.token_url" => &mut c.ebay.token_url,
                "google_shopping.api" => &mut c.google_shopping.api,
                _ => &mut c.google_shopping.token_url,
            };
            *slot = url;
        }
    }

    /// The same, as environment variables of a service process.
    pub fn env(&self) -> Vec<(String, String)> {
        self.endpoints()
            .into_iter()
            .map(|(key, url)| {
                let var = key.to_uppercase().replace('.', "__");
                (format!("SS3_CONNECTORS__{var}"), url)
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Requests other than token exchanges.
    pub fn api_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| !c.path.ends_with("/token"))
            .collect()
    }

    /// Token exchanges.
    pub fn token_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/token"))
            .collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Answer the next `times` requests whose path contains `path_contains` with `status` (and `Retry-After`).
    pub fn fail(&self, path_contains: &str, times: u32, status: u16, retry_after: Option<u64>) {
        self.lock().failures.push(Failure {
            path_contains: path_contains.to_owned(),
            remaining: times,
            status,
            retry_after,
        });
    }

    /// Stop failing.
    pub fn heal(&self) {
        self.lock().failures.clear();
    }

    /// An Amazon order (Orders API v0 shape).
    pub fn add_order(&self, id: &str, purchase_date: &str) {
        self.lock().orders.push(json!({
            "AmazonOrderId": id, "PurchaseDate": purchase_date, "LastUpdateDate": purchase_date,
            "OrderStatus": "Unshipped", "FulfillmentChannel": "MFN", "MarketplaceId": "ATVPDKIKX0DER",
            "OrderTotal": {"CurrencyCode": "USD", "Amount": "42.00"}, "NumberOfItemsUnshipped": 1
        }));
    }

    /// eBay offers of a SKU.
    pub fn set_offers(&self, sku: &str, offer_ids: &[&str]) {
        self.lock().offers.insert(
            sku.to_owned(),
            offer_ids.iter().map(|s| (*s).to_owned()).collect(),
        );
    }
}
