//! Google's side of the fake channels: the OAuth JWT bearer grant (the assertion's RS256 signature checked with
//! the test service account's public key) and the Merchant API routes the adapter calls. As the Merchant API does,
//! it refuses every call with 401 `UNAUTHENTICATED` until the service account's Cloud project is registered with
//! the merchant account (`developerRegistration:registerGcp`), and refuses a `ProductInput` or `RegisterGcpRequest`
//! its contract (`connectors/fixtures/contracts/google-merchant-product-input-v1.json`) rejects with 400
//! `INVALID_ARGUMENT`.

use std::sync::LazyLock;

use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use poem::Response;
use serde_json::{Value, json};

use crate::fake::{Call, Contract, FakeChannels, State, check_body, json_response};

const PROTOS: &str = include_str!("../../fixtures/contracts/google-merchant-product-input-v1.json");
static PRODUCT_INPUT: LazyLock<Contract> = LazyLock::new(|| Contract::new(PROTOS, "ProductInput"));
static REGISTER_GCP: LazyLock<Contract> =
    LazyLock::new(|| Contract::new(PROTOS, "RegisterGcpRequest"));

/// The Cloud project number of the test service account.
const GCP_NUMBER: &str = "480910322376";

/// Google's side: whether the service account's Cloud project is registered, and the developer contact.
#[derive(Default)]
pub(crate) struct Google {
    registered: bool,
    developer_email: Option<String>,
}

/// Service-account email the fake accepts.
pub const GOOGLE_CLIENT_EMAIL: &str = "feed@shopstar-test.iam.gserviceaccount.com";

/// The test service account's private key (`connectors/fixtures`; it grants nothing anywhere).
const PRIVATE_KEY_PEM: &str = include_str!("../../fixtures/google-test-service-account.pem");

/// The test service account's private key, as a config's `apiSecret`.
pub fn google_private_key() -> String {
    PRIVATE_KEY_PEM.to_owned()
}

/// `[connectors.google_shopping]` keys pointing at the fake at `base`.
pub(crate) fn endpoints(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("google_shopping.api", base.to_owned()),
        ("google_shopping.token_url", format!("{base}/token")),
    ]
}

/// Google's answer to `call`, or `None` when the path is not Google's. `base` is the fake's URL (the JWT audience
/// is its `/token`).
pub(crate) fn route(state: &mut State, call: &Call, base: &str) -> Option<Response> {
    let p = call.path.as_str();
    if call.method == "POST" && p == "/token" {
        return Some(token(state, call, base));
    }
    if !(p.starts_with("/products/v1/") || p.starts_with("/accounts/v1/")) {
        return None;
    }
    if !call
        .header("authorization")
        .starts_with("Bearer ya29.access-")
    {
        return Some(status_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ));
    }
    if call.method == "POST" && p.ends_with("/developerRegistration:registerGcp") {
        return Some(register(state, call));
    }
    if !state.google.registered {
        let m = format!(
            "GCP project with id shopstar-test and number {GCP_NUMBER} is not registered with the merchant account. \
             Follow these steps https://developers.google.com/merchant/api/guides/quickstart#register_as_a_developer \
             to register the GCP project with the merchant account then try calling the API again in 5 minutes."
        );
        return Some(status_error(401, "UNAUTHENTICATED", &m));
    }
    if call.method == "GET" {
        let name = p.trim_start_matches("/accounts/v1/");
        return Some(json_response(
            200,
            json!({"name": name, "accountName": "Fake Merchant"}),
        ));
    }
    if let Some(detail) = check_body(state, call, &PRODUCT_INPUT) {
        return Some(status_error(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid JSON payload received. {detail}"),
        ));
    }
    let mut input = call.json();
    let offer = input["offerId"].as_str().unwrap_or("").to_owned();
    input["name"] = json!(format!("accounts/123/productInputs/en~US~{offer}"));
    Some(json_response(200, input))
}

/// Google's error shape (`google.rpc.Status` as JSON).
fn status_error(code: u16, status: &str, message: &str) -> Response {
    json_response(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// `developerRegistration:registerGcp`: registers the calling project; the developer email must be a person's.
fn register(state: &mut State, call: &Call) -> Response {
    if let Some(detail) = check_body(state, call, &REGISTER_GCP) {
        return status_error(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid JSON payload received. {detail}"),
        );
    }
    let email = call.json()["developerEmail"].as_str().map(str::to_owned);
    if email
        .as_deref()
        .is_some_and(|e| e.ends_with(".iam.gserviceaccount.com"))
    {
        return status_error(
            400,
            "INVALID_ARGUMENT",
            "developerEmail must not be a service account.",
        );
    }
    state.google.registered = true;
    state.google.developer_email = email;
    let name = call
        .path
        .trim_start_matches("/accounts/v1/")
        .trim_end_matches(":registerGcp");
    json_response(200, json!({"name": name, "gcpIds": [GCP_NUMBER]}))
}

impl FakeChannels {
    /// Register the test service account's Cloud project, as an operator would have done once.
    pub fn register_gcp(&self) {
        self.lock().google.registered = true;
    }

    /// The developer contact the registration named (`None` before one).
    pub fn gcp_developer_email(&self) -> Option<String> {
        let state = self.lock();
        state
            .google
            .registered
            .then(|| state.google.developer_email.clone())
            .flatten()
    }
}

/// The public half of the test service account's key (PKCS#1 `RSAPublicKey` DER).
fn public_key() -> Vec<u8> {
    let b64: String = PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).unwrap_or_default();
    RsaKeyPair::from_pkcs8(&der)
        .map(|key| key.public_key().as_ref().to_vec())
        .unwrap_or_default()
}

fn decode_json(part: &str) -> Value {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Why the assertion is refused, or `None` when it is a valid RS256 JWT of the test account for `audience`.
fn refusal(jwt: &str, audience: &str) -> Option<&'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Some("not a JWT");
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return Some("signature encoding");
    };
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key());
    let signed = format!("{header}.{claims}");
    if key.verify(signed.as_bytes(), &signature).is_err() {
        return Some("Invalid JWT Signature.");
    }
    let (header, claims) = (decode_json(header), decode_json(claims));
    let ok = header["alg"] == "RS256"
        && claims["iss"] == GOOGLE_CLIENT_EMAIL
        && claims["aud"] == audience
        && claims["scope"] == "https://www.googleapis.com/auth/content"
        && claims["exp"]
            .as_i64()
            .zip(claims["iat"].as_i64())
            .is_some_and(|(e, i)| e - i <= 3600 && e > i);
    (!ok).then_some("claims")
}

fn token(state: &mut State, call: &Call, base: &str) -> Response {
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
    if let Some(why) = refusal(jwt, &format!("{base}/token")) {
        return refuse(why);
    }
    state.tokens += 1;
    json_response(
        200,
        json!({"access_token": format!("ya29.access-{}", state.tokens), "expires_in": 3599, "token_type": "Bearer"}),
    )
}
