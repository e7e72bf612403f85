//! Google Shopping (outbound): `product.updated` → Merchant API `productInputs.insert` into the config's API data
//! source (an upsert by offer id). Auth: service account, RS256-signed JWT exchanged for an access token.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;
use workflows::catalog::listings;
use workflows::channels::google::{Feed, jwt_claims, product_input};
use workflows::ratelimit::RateLimit;

use super::{cached_token, call_with_token, encode, refuse_endpoint_settings};
use crate::connector::tokens::TokenCache;
use crate::connector::{
    ChannelRequest, ConnectorAdapter, ConnectorContext, ConnectorError, ConnectorEvent,
    CredentialField, Method, SyncReport, parse_settings,
};

/// Settings of a Google Shopping config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Merchant Center account id.
    pub merchant_id: String,
    /// Id of the API data source products are inserted into.
    pub data_source_id: String,
    /// Content language.
    #[serde(default = "default_language")]
    pub content_language: String,
    /// Feed label.
    #[serde(default = "default_feed_label")]
    pub feed_label: String,
}

/// Where Google's APIs are: deployment configuration (`[connectors.google_shopping]`), never a connector setting,
/// so no API call can send a signed service-account assertion anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Endpoints {
    /// Merchant API base URL.
    pub api: String,
    /// OAuth token endpoint (also the JWT audience).
    pub token_url: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            api: "https://merchantapi.googleapis.com".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
        }
    }
}
fn default_language() -> String {
    "en".into()
}
fn default_feed_label() -> String {
    "US".into()
}

/// Sign `claims` as an RS256 JWT with a PKCS#8 PEM private key (a service account's `private_key`).
pub fn sign_jwt(private_key_pem: &str, claims: &Value) -> Result<String, ConnectorError> {
    let bad = |why: &str| {
        ConnectorError::Credentials(format!(
            "api-secret is not a usable service-account private key: {why}"
        ))
    };
    let b64: String = private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = STANDARD.decode(b64).map_err(|_| bad("not PEM"))?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| bad(&e.to_string()))?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| bad("signing failed"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The Google Shopping adapter.
#[derive(Default)]
pub struct GoogleShopping {
    tokens: TokenCache,
    endpoints: Endpoints,
}

impl GoogleShopping {
    /// An adapter calling these endpoints.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            tokens: TokenCache::default(),
            endpoints,
        }
    }

    async fn access_token(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        let token_url = &self.endpoints.token_url;
        cached_token(ctx, &self.tokens, || {
            let email = ctx.credentials.require(CredentialField::ApiKey)?;
            let key = ctx.credentials.require(CredentialField::ApiSecret)?;
            let assertion = sign_jwt(key, &jwt_claims(email, token_url, ctx.now.timestamp()))?;
            Ok(ChannelRequest::new(Method::Post, token_url).form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ]))
        })
        .await
    }
}

#[async_trait]
impl ConnectorAdapter for GoogleShopping {
    fn connector_type(&self) -> &'static str {
        "google_shopping"
    }

    fn supported_events(&self) -> &'static [&'static str] {
        &["product.updated"]
    }

    fn required_credentials(&self) -> &'static [CredentialField] {
        &[CredentialField::ApiKey, CredentialField::ApiSecret]
    }

    fn default_rate_limit(&self) -> RateLimit {
        RateLimit {
            per_second: 10.0,
            burst: 20,
        }
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        refuse_endpoint_settings(settings, "google_shopping")?;
        parse_settings::<Settings>(settings)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError> {
        let s: Settings = parse_settings(&ctx.config.settings)?;
        if event.event_type != "product.updated" {
            return Ok(SyncReport {
                entity_type: workflows::connector::entity_of(&event.event_type).to_owned(),
                records: 0,
                skipped: Some(format!(
                    "{} is not synced to Google Shopping",
                    event.event_type
                )),
            });
        }
        let feed = Feed {
            merchant_id: &s.merchant_id,
            content_language: &s.content_language,
            feed_label: &s.feed_label,
        };
        let items = listings(&event.data)?;
        let data_source = format!(
            "accounts/{}/dataSources/{}",
            s.merchant_id, s.data_source_id
        );
        let url = format!(
            "{}/products/v1/accounts/{}/productInputs:insert?dataSource={}",
            self.endpoints.api.trim_end_matches('/'),
            encode(&s.merchant_id),
            encode(&data_source)
        );
        for l in &items {
            let token = self.access_token(ctx).await?;
            let request = ChannelRequest::new(Method::Post, &url)
                .bearer(&token)
                .json(product_input(l, &feed));
            call_with_token(ctx, &self.tokens, &request).await?;
        }
        Ok(SyncReport {
            entity_type: "product".into(),
            records: items.len() as u32,
            skipped: None,
        })
    }

    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        let s: Settings = parse_settings(&ctx.config.settings)?;
        let token = self.access_token(ctx).await?;
        let url = format!(
            "{}/accounts/v1/accounts/{}",
            self.endpoints.api.trim_end_matches('/'),
            encode(&s.merchant_id)
        );
        let answer = call_with_token(
            ctx,
            &self.tokens,
            &ChannelRequest::new(Method::Get, url).bearer(&token),
        )
        .await?;
        Ok(format!(
            "service-account token obtained; account {}",
            answer["accountName"].as_str().unwrap_or("?")
        ))
    }
}
