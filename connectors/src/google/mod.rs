//! Google Shopping (outbound): `product.updated` → Merchant API `productInputs.insert` into the config's API data
//! source (an upsert by offer id). Auth: service account, RS256-signed JWT exchanged for an access token. The
//! Merchant API refuses every call until the service account's Cloud project is registered with the merchant
//! account: "test connection" registers it (`developerRegistration:registerGcp`, with `settings.developerEmail`),
//! and a call refused for that reason fails with an error that says so, without retries.

#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod settings;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use workflows::catalog::listings;
use workflows::ratelimit::RateLimit;

use self::mapping::{Feed, jwt_claims, product_input};
pub use self::settings::{Endpoints, NumericId, Settings};
use crate::adapter::Connector;
use crate::channel::{ChannelRequest, Method, encode};
use crate::credentials::CredentialField;
use crate::model::{ConnectorContext, ConnectorError, ConnectorEvent, SyncReport};
use crate::tokens::{TokenCache, cached_token, call_with_token};
use workflows::connector::SyncFailure;

/// Sign `claims` as an RS256 JWT with a service account's `private_key` (PEM, PKCS#8 or PKCS#1).
pub fn sign_jwt(private_key_pem: &str, claims: &Value) -> Result<String, ConnectorError> {
    let bad = |e: jsonwebtoken::errors::Error| {
        ConnectorError::Credentials(format!(
            "api-secret is not a usable service-account private key: {e}"
        ))
    };
    let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(bad)?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).map_err(bad)
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

    /// One authenticated Merchant API call; the "project not registered" refusal becomes a permanent error that
    /// says what to do.
    async fn call(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        request: ChannelRequest,
    ) -> Result<Value, ConnectorError> {
        let token = self.access_token(ctx).await?;
        match call_with_token(ctx, &self.tokens, &request.bearer(&token)).await {
            Err(ConnectorError::Channel(f)) if is_not_registered(&f) => {
                Err(ConnectorError::Channel(SyncFailure {
                    reason: format!(
                        "the service account's Google Cloud project is not registered with Merchant Center account {}: \
                     set settings.developerEmail and run \"test connection\", which registers it \
                     (developerRegistration:registerGcp), then re-trigger ({})",
                        s.merchant_id.as_str(),
                        f.reason
                    ),
                    permanent: true,
                    ..f
                }))
            }
            other => other,
        }
    }

    /// `developerRegistration:registerGcp` of the service account's project with the merchant account, naming
    /// `email` as developer contact; registering again is harmless.
    async fn register_gcp(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        email: &str,
    ) -> Result<(), ConnectorError> {
        let url = format!(
            "{}/accounts/v1/accounts/{}/developerRegistration:registerGcp",
            self.endpoints.api.trim_end_matches('/'),
            encode(s.merchant_id.as_str())
        );
        let body = serde_json::json!({"developerEmail": email});
        self.call(ctx, s, ChannelRequest::new(Method::Post, url).json(body))
            .await
            .map(drop)
    }

    /// `product.updated`: one product input per listing.
    async fn insert_products(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let feed = Feed {
            merchant_id: s.merchant_id.as_str(),
            content_language: s.content_language.as_str(),
            feed_label: s.feed_label.as_str(),
        };
        let items = listings(data)?;
        let (merchant, source) = (s.merchant_id.as_str(), s.data_source_id.as_str());
        let data_source = format!("accounts/{merchant}/dataSources/{source}");
        let url = format!(
            "{}/products/v1/accounts/{}/productInputs:insert?dataSource={}",
            self.endpoints.api.trim_end_matches('/'),
            encode(merchant),
            encode(&data_source)
        );
        for l in &items {
            let request = ChannelRequest::new(Method::Post, &url).json(product_input(l, &feed));
            self.call(ctx, s, request).await?;
        }
        Ok(SyncReport::written("product", items.len()))
    }
}

#[async_trait]
impl Connector for GoogleShopping {
    type Settings = Settings;

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

    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError> {
        match event.event_type.as_str() {
            "product.updated" => self.insert_products(ctx, s, &event.data).await,
            other => Ok(SyncReport::not_synced(other, "Google Shopping")),
        }
    }

    async fn test_connection(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
    ) -> Result<String, ConnectorError> {
        if let Some(email) = &s.developer_email {
            self.register_gcp(ctx, s, email.as_str()).await?;
        }
        let url = format!(
            "{}/accounts/v1/accounts/{}",
            self.endpoints.api.trim_end_matches('/'),
            encode(s.merchant_id.as_str())
        );
        let answer = self
            .call(ctx, s, ChannelRequest::new(Method::Get, url))
            .await?;
        let registered = if s.developer_email.is_some() {
            "Cloud project registered; "
        } else {
            ""
        };
        Ok(format!(
            "service-account token obtained; {registered}account {}",
            answer["accountName"].as_str().unwrap_or("?")
        ))
    }
}

/// The Merchant API's refusal of a Cloud project not registered with the merchant account (401 `UNAUTHENTICATED`,
/// "GCP project with id … is not registered with the merchant account").
fn is_not_registered(f: &SyncFailure) -> bool {
    f.status == Some(401)
        && f.reason
            .contains("is not registered with the merchant account")
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const KEY: &str = include_str!("../../fixtures/google-test-service-account.pem");

    #[test]
    fn signs_rs256_with_a_pkcs8_key_and_refuses_anything_else() {
        let jwt = sign_jwt(KEY, &json!({"iss": "sa@example"})).expect("signs");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = URL_SAFE_NO_PAD
            .decode(parts[0])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
        assert!(matches!(
            sign_jwt(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                &json!({})
            ),
            Err(ConnectorError::Credentials(_))
        ));
    }
}
