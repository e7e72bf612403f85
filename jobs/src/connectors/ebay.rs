//! eBay Sell Inventory API (outbound): `product.updated` → inventory items (bulk create-or-replace by SKU) and
//! price updates of existing offers; `inventory.updated` → bulk quantity updates. Auth: OAuth user refresh token.

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use workflows::catalog::{listings, stock_levels};
use workflows::channels::ebay::{
    BULK_LIMIT, bulk_failures, inventory_item_batches, offer_price_request, quantity_batches,
};
use workflows::connector::{StatusClass, SyncFailure, classify_status};
use workflows::ratelimit::RateLimit;

use super::{api_request, cached_token, call_with_token, encode, refuse_endpoint_settings};
use crate::connector::tokens::TokenCache;
use crate::connector::{
    ChannelRequest, ConnectorAdapter, ConnectorContext, ConnectorError, ConnectorEvent,
    CredentialField, Method, SyncReport, parse_settings,
};

/// OAuth scope for the Sell Inventory API.
pub const SCOPE: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";

/// Settings of an eBay config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Marketplace of the offers.
    #[serde(default = "default_marketplace")]
    pub marketplace_id: String,
    /// Locale of inventory items.
    #[serde(default = "default_locale")]
    pub locale: String,
    /// `Content-Language` of requests.
    #[serde(default = "default_language")]
    pub content_language: String,
}

/// Where eBay's APIs are: deployment configuration (`[connectors.ebay]`), never a connector setting, so no API
/// call can send a config's credentials anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Endpoints {
    /// API base URL (`https://api.sandbox.ebay.com` for the sandbox).
    pub api: String,
    /// OAuth token endpoint.
    pub token_url: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            api: "https://api.ebay.com".into(),
            token_url: "https://api.ebay.com/identity/v1/oauth2/token".into(),
        }
    }
}
fn default_marketplace() -> String {
    "EBAY_US".into()
}
fn default_locale() -> String {
    "en_US".into()
}
fn default_language() -> String {
    "en-US".into()
}

/// The eBay adapter.
#[derive(Default)]
pub struct Ebay {
    tokens: TokenCache,
    endpoints: Endpoints,
}

impl Ebay {
    /// An adapter calling these endpoints.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            tokens: TokenCache::default(),
            endpoints,
        }
    }

    async fn access_token(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        cached_token(ctx, &self.tokens, || {
            let c = ctx.credentials;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.require(CredentialField::ApiKey)?,
                c.require(CredentialField::ApiSecret)?
            ));
            Ok(ChannelRequest::new(Method::Post, &self.endpoints.token_url)
                .header("authorization", format!("Basic {basic}"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.require(CredentialField::RefreshToken)?),
                    ("scope", SCOPE),
                ]))
        })
        .await
    }

    async fn call(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> Result<Value, ConnectorError> {
        let token = self.access_token(ctx).await?;
        let request = api_request(method, &self.endpoints.api, &path, body)
            .bearer(&token)
            .header("content-language", s.content_language.clone());
        call_with_token(ctx, &self.tokens, &request).await
    }

    /// POST a bulk body; fail if any item failed (permanently if every failure is the item's own fault).
    async fn bulk(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        path: &str,
        body: Value,
    ) -> Result<(), ConnectorError> {
        let answer = self
            .call(ctx, s, Method::Post, path.to_owned(), Some(body))
            .await?;
        let failures = bulk_failures(&answer);
        if failures.is_empty() {
            return Ok(());
        }
        let permanent = failures
            .iter()
            .all(|(_, status, _)| classify_status(*status) == StatusClass::Permanent);
        let detail: Vec<String> = failures
            .iter()
            .map(|(sku, st, m)| format!("{sku}: HTTP {st} {m}"))
            .collect();
        Err(ConnectorError::Channel(SyncFailure {
            reason: format!(
                "eBay {path} refused {} item(s): {}",
                failures.len(),
                detail.join("; ")
            ),
            status: failures.first().map(|f| f.1),
            retry_after: None,
            permanent,
        }))
    }

    /// Offer ids of a SKU on the marketplace (none yet is not an error: eBay answers 404).
    async fn offer_ids(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        sku: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let path = format!(
            "/sell/inventory/v1/offer?sku={}&marketplace_id={}",
            encode(sku),
            encode(&s.marketplace_id)
        );
        match self.call(ctx, s, Method::Get, path, None).await {
            Ok(answer) => Ok(answer["offers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["offerId"].as_str().map(str::to_owned))
                .collect()),
            Err(ConnectorError::Channel(f)) if f.status == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ConnectorAdapter for Ebay {
    fn connector_type(&self) -> &'static str {
        "ebay"
    }

    fn supported_events(&self) -> &'static [&'static str] {
        &["product.updated", "inventory.updated"]
    }

    fn required_credentials(&self) -> &'static [CredentialField] {
        &[
            CredentialField::ApiKey,
            CredentialField::ApiSecret,
            CredentialField::RefreshToken,
        ]
    }

    fn default_rate_limit(&self) -> RateLimit {
        // eBay meters Inventory API calls per day (2M); spread them and keep bursts modest.
        RateLimit {
            per_second: 20.0,
            burst: 20,
        }
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        refuse_endpoint_settings(settings, "ebay")?;
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
        match event.event_type.as_str() {
            "product.updated" => {
                let items = listings(&event.data)?;
                for body in inventory_item_batches(&items, &s.locale) {
                    self.bulk(
                        ctx,
                        &s,
                        "/sell/inventory/v1/bulk_create_or_replace_inventory_item",
                        body,
                    )
                    .await?;
                }
                let mut prices = Vec::new();
                for l in items.iter().filter(|l| l.price.is_some()) {
                    let offers = self.offer_ids(ctx, &s, &l.sku).await?;
                    prices.extend(offer_price_request(l, &offers));
                }
                for chunk in prices.chunks(BULK_LIMIT) {
                    self.bulk(
                        ctx,
                        &s,
                        "/sell/inventory/v1/bulk_update_price_quantity",
                        json!({"requests": chunk}),
                    )
                    .await?;
                }
                Ok(SyncReport {
                    entity_type: "listing".into(),
                    records: items.len() as u32,
                    skipped: None,
                })
            }
            "inventory.updated" => {
                let levels = stock_levels(&event.data)?;
                for body in quantity_batches(&levels) {
                    self.bulk(
                        ctx,
                        &s,
                        "/sell/inventory/v1/bulk_update_price_quantity",
                        body,
                    )
                    .await?;
                }
                Ok(SyncReport {
                    entity_type: "inventory".into(),
                    records: levels.len() as u32,
                    skipped: None,
                })
            }
            other => Ok(SyncReport {
                entity_type: workflows::connector::entity_of(other).to_owned(),
                records: 0,
                skipped: Some(format!("{other} is not synced to eBay")),
            }),
        }
    }

    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        let s: Settings = parse_settings(&ctx.config.settings)?;
        let answer = self
            .call(
                ctx,
                &s,
                Method::Get,
                "/sell/inventory/v1/inventory_item?limit=1".into(),
                None,
            )
            .await?;
        Ok(format!(
            "OAuth token obtained; {} inventory item(s) on eBay",
            answer["total"].as_u64().unwrap_or(0)
        ))
    }
}
