//! Google's side of the fake channels: the OAuth JWT bearer grant (the assertion's RS256 signature checked with
//! the test service account's public key) and the Merchant API routes the adapter calls.

use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use poem::Response;
use serde_json::{Value, json};

use crate::fake::{Call, State, json_response};

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
        return Some(json_response(
            401,
            json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        ));
    }
    if call.method == "GET" {
        let name = p.trim_start_matches("/accounts/v1/");
        return Some(json_response(
            200,
            json!({"name": name, "accountName": "Fake Merchant"}),
        ));
    }
    let mut input = call.json();
    let offer = input["offerId"].as_str().unwrap_or("").to_owned();
    input["name"] = json!(format!("accounts/123/productInputs/en~US~{offer}"));
    Some(json_response(200, input))
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
