//! A local fake of the channels (feature `fake`): one HTTP server that answers as Amazon SP-API with LWA, eBay
//! Sell Inventory with OAuth and Google Merchant API with the OAuth JWT bearer grant. Each marketplace's routes are
//! in its own folder (`amazon/fake/`…); this module is the server, the request log, the contract check and forced
//! failures. It checks auth the way the real services do, validates request bodies against the published schemas
//! (`connectors/fixtures/contracts`, [`Contract`]), answers in their shapes, records every request and every contract
//! violation, and can be told to fail the next N matching requests with a status and `Retry-After`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::{Value, json};

pub use crate::amazon::fake::{
    AMAZON_CLIENT_ID, AMAZON_CLIENT_SECRET, AMAZON_REFRESH_TOKEN, CATALOG_ASIN, CATALOG_EAN,
};
pub use crate::ebay::fake::{EBAY_CLIENT_ID, EBAY_CLIENT_SECRET, EBAY_REFRESH_TOKEN};
pub use crate::google::fake::{GOOGLE_CLIENT_EMAIL, google_private_key};
use crate::{amazon, ebay, google};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method, upper case.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Call {
    /// A header's value (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The body as form fields.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    /// A query parameter, decoded.
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

/// One definition of a contract fixture (`connectors/fixtures/contracts`), compiled: the body schema the real
/// service publishes for one operation.
pub(crate) struct Contract(jsonschema::Validator);

impl Contract {
    /// `definition` of the fixture `document` (JSON Schema draft 7, formats asserted). A broken fixture panics: it
    /// is a bug of the tests, not of the code under test.
    pub(crate) fn new(document: &str, definition: &str) -> Self {
        let doc: Value = serde_json::from_str(document)
            .unwrap_or_else(|e| panic!("contract fixture is not JSON: {e}"));
        let schema = json!({"$ref": format!("#/definitions/{definition}"), "definitions": doc["definitions"]});
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("contract {definition}: {e}"));
        Self(validator)
    }

    /// What `body` breaks, as `path: message` (empty when it conforms).
    pub(crate) fn violations(&self, body: &Value) -> Vec<String> {
        self.0
            .iter_errors(body)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }
}

/// Check `call`'s JSON body against `contract`: `None` when it conforms, otherwise the violations, also recorded
/// in the fake's log of violations (tests assert it stays empty).
pub(crate) fn check_body(state: &mut State, call: &Call, contract: &Contract) -> Option<String> {
    let violations = contract.violations(&call.json());
    if violations.is_empty() {
        return None;
    }
    let detail = violations.join("; ");
    state.violations.push(format!("{}: {detail}", call.line()));
    Some(detail)
}

/// A forced failure of matching requests.
struct Failure {
    path_contains: String,
    remaining: u32,
    status: u16,
    retry_after: Option<u64>,
}

/// Everything the fake remembers.
#[derive(Default)]
pub(crate) struct State {
    calls: Vec<Call>,
    failures: Vec<Failure>,
    /// Requests whose body broke its contract, with why.
    pub(crate) violations: Vec<String>,
    /// Access tokens issued so far (by every token endpoint; numbers the tokens).
    pub(crate) tokens: u32,
    /// Amazon's listings, product types, catalog, orders and shipments.
    pub(crate) amazon: amazon::fake::Amazon,
    /// eBay's inventory items and offers.
    pub(crate) ebay: ebay::fake::Ebay,
    /// Google's Merchant Center account.
    pub(crate) google: google::fake::Google,
}

/// What every request handler shares.
#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    base: Arc<String>,
}

/// The fake; [`FakeChannels::url`] is the base URL of every channel API and token endpoint.
pub struct FakeChannels {
    /// The address it listens on.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// A JSON answer.
pub(crate) fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

fn record(req: &Request, body: Vec<u8>) -> Call {
    Call {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                let value = v.to_str().unwrap_or_default();
                (k.as_str().to_owned(), value.to_owned())
            })
            .collect(),
        body,
        at: Instant::now(),
    }
}

/// The forced failure of `call`, if one matches its path and query (token exchanges never fail this way). A 429
/// has Amazon's `QuotaExceeded` body (SP-API sends no `Retry-After`; give none to get its bare 429).
fn forced_failure(state: &mut State, call: &Call) -> Option<Response> {
    if call.path.ends_with("/token") {
        return None;
    }
    let target = format!("{}?{}", call.path, call.query);
    let f = state
        .failures
        .iter_mut()
        .find(|f| f.remaining > 0 && target.contains(&f.path_contains))?;
    f.remaining -= 1;
    let (code, message) = match f.status {
        429 => (
            "QuotaExceeded",
            "You exceeded your quota for the requested resource.".to_owned(),
        ),
        status => ("Fake", format!("forced {status}")),
    };
    let mut r = json_response(
        f.status,
        json!({"errors": [{"code": code, "message": message}]}),
    );
    if let Some(secs) = f.retry_after
        && let Ok(value) = secs.to_string().parse()
    {
        r.headers_mut().insert("retry-after", value);
    }
    Some(r)
}

#[handler]
async fn any(req: &Request, body: Vec<u8>, shared: Data<&Shared>) -> Response {
    let call = record(req, body);
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    state.calls.push(call.clone());
    if let Some(r) = forced_failure(&mut state, &call) {
        return r;
    }
    amazon::fake::route(&mut state, &call, &shared.base)
        .or_else(|| ebay::fake::route(&mut state, &call))
        .or_else(|| google::fake::route(&mut state, &call, &shared.base))
        .unwrap_or_else(|| {
            json_response(
                404,
                json!({"error": "no such fake route", "path": call.path}),
            )
        })
}

impl FakeChannels {
    /// Start the fake on a free local port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the fake channels: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake channels' address: {e}"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Shared {
            state: state.clone(),
            base: Arc::new(format!("http://{addr}")),
        };
        let app = Route::new().at("/*path", any).data(shared);
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)
            .unwrap_or_else(|e| panic!("fake channels' acceptor: {e}"));
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { addr, state }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The channel endpoints of a deployment whose every channel is this fake, as `(config key, URL)` with keys
    /// relative to `[connectors]` (`amazon.lwa_endpoint`…).
    pub fn endpoints(&self) -> Vec<(&'static str, String)> {
        let base = self.url();
        let mut all = amazon::fake::endpoints(&base);
        all.extend(ebay::fake::endpoints(&base));
        all.extend(google::fake::endpoints(&base));
        all
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Requests other than token exchanges.
    pub fn api_calls(&self) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls.filter(|c| !c.path.ends_with("/token")).collect()
    }

    /// Token exchanges.
    pub fn token_calls(&self) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls.filter(|c| c.path.ends_with("/token")).collect()
    }

    /// Forget the requests so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Request bodies that broke their published contract so far (`METHOD /path: violations`).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Answer the next `times` requests whose `path?query` contains `path_contains` with `status` (and `Retry-After`).
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Contract;

    const CONFIRM: &str =
        include_str!("../fixtures/contracts/amazon-orders-v0-confirm-shipment.json");
    const LISTINGS: &str =
        include_str!("../fixtures/contracts/amazon-listings-items-2021-08-01.json");
    const EBAY: &str = include_str!("../fixtures/contracts/ebay-sell-inventory-v1.json");
    const GOOGLE: &str =
        include_str!("../fixtures/contracts/google-merchant-product-input-v1.json");

    /// Catches: a contract fixture too loose to refuse the bodies issue 14 found (or so strict it refuses good ones).
    #[test]
    fn contracts_refuse_the_bodies_the_real_services_refuse() {
        let confirm = Contract::new(CONFIRM, "ConfirmShipmentRequest");
        let mut body = json!({"marketplaceId": "ATVPDKIKX0DER", "packageDetail": {"packageReferenceId": "f-1",
            "carrierCode": "Other", "trackingNumber": "1Z", "shipDate": "2026-11-20T10:00:00Z",
            "orderItems": [{"orderItemId": "i1", "quantity": 1}]}});
        let v = confirm.violations(&body).join("\n");
        assert!(v.contains("/packageDetail/packageReferenceId"), "{v}");
        assert!(v.contains("carrierName"), "{v}");
        body["packageDetail"]["packageReferenceId"] = json!("1729");
        body["packageDetail"]["carrierName"] = json!("Acme Freight");
        assert_eq!(confirm.violations(&body), Vec::<String>::new());

        let patch = Contract::new(LISTINGS, "ListingsItemPatchRequest");
        let mut body = json!({"productType": "PRODUCT", "patches": [{"op": "merge",
            "path": "/attributes/fulfillment_availability", "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 1}]}]});
        assert_eq!(patch.violations(&body), Vec::<String>::new());
        body["patches"][0]["op"] = json!("upsert");
        assert_eq!(patch.violations(&body).len(), 1);

        let prices = Contract::new(EBAY, "BulkPriceQuantity");
        let requests: Vec<_> = (0..26)
            .map(|i| json!({"sku": format!("S{i}"), "shipToLocationAvailability": {"quantity": 1}}))
            .collect();
        assert!(
            !prices.violations(&json!({"requests": requests})).is_empty(),
            "at most 25"
        );
        let offer_without_change =
            json!({"requests": [{"sku": "A", "offers": [{"offerId": "1"}]}]});
        assert!(
            !prices.violations(&offer_without_change).is_empty(),
            "price or quantity"
        );

        let input = Contract::new(GOOGLE, "ProductInput");
        let mut body = json!({"offerId": "A", "contentLanguage": "en", "feedLabel": "US",
            "productAttributes": {"title": "T", "price": {"amountMicros": "1000000", "currencyCode": "USD"}}});
        assert_eq!(input.violations(&body), Vec::<String>::new());
        body["productAttributes"]["price"]["amountMicros"] = json!(1_000_000);
        body["productAttributes"]["colour"] = json!("blue");
        assert_eq!(
            input.violations(&body).len(),
            2,
            "int64 as a string; unknown field names refused"
        );
    }
}
