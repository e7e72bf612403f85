//! eBay Sell Inventory API (outbound): `product.updated` → inventory items (bulk create-or-replace by SKU, the
//! current quantity restated when the event has none) and price updates of published offers; `inventory.updated` →
//! bulk quantity updates of the item and its published offers (the listing shows the smaller of the two). Offers not
//! published are left alone (bulkUpdatePriceQuantity does not revise them) and named in the sync log. Auth: OAuth
//! user refresh token.

#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod settings;

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Value, json};
use workflows::catalog::{listings, stock_levels};
use workflows::connector::{StatusClass, SyncFailure, classify_status};
use workflows::ratelimit::RateLimit;

use self::mapping::{
    BULK_LIMIT, bulk_failures, current_quantities, get_item_batches, inventory_item_batches,
    offer_price_request, quantity_request,
};
pub use self::settings::{Endpoints, MarketplaceId, Settings};
use crate::adapter::Connector;
use crate::channel::{ChannelRequest, Method, api_request, encode};
use crate::credentials::CredentialField;
use crate::model::{ConnectorContext, ConnectorError, ConnectorEvent, SyncReport};
use crate::tokens::{TokenCache, cached_token, call_with_token};

/// OAuth scope for the Sell Inventory API.
pub const SCOPE: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";

/// Bulk create-or-replace of inventory items.
const CREATE_OR_REPLACE: &str = "/sell/inventory/v1/bulk_create_or_replace_inventory_item";
/// Bulk update of offer prices and quantities.
const PRICE_QUANTITY: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// Bulk read of inventory items.
const GET_ITEMS: &str = "/sell/inventory/v1/bulk_get_inventory_item";

/// A SKU's offers on the config's marketplace, split by whether they are published (live listings).
#[derive(Debug, Default)]
struct Offers {
    published: Vec<String>,
    unpublished: Vec<String>,
}

/// The sync-log note naming offers left alone because they are not published.
fn unpublished_note(skipped: &[(String, String)]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let list: Vec<String> = skipped
        .iter()
        .map(|(sku, id)| format!("{sku} (offer {id})"))
        .collect();
    Some(format!(
        "skipped {} unpublished eBay offer(s), which bulkUpdatePriceQuantity cannot revise: {}; publish them on eBay",
        skipped.len(),
        list.join(", ")
    ))
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
            .header("content-language", s.content_language.as_str());
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

    /// `product.updated`: inventory items created or replaced (restating the quantity of those the event has
    /// none for), then the prices of published offers.
    async fn sync_listings(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let items = listings(data)?;
        let unknown: Vec<&str> = items
            .iter()
            .filter(|l| l.active && l.quantity.is_none())
            .map(|l| l.sku.as_str())
            .collect();
        let mut current = HashMap::new();
        for body in get_item_batches(&unknown) {
            let path = GET_ITEMS.to_owned();
            let answer = self.call(ctx, s, Method::Post, path, Some(body)).await?;
            current.extend(current_quantities(&answer));
        }
        for body in inventory_item_batches(&items, s.locale.as_str(), &current) {
            self.bulk(ctx, s, CREATE_OR_REPLACE, body).await?;
        }
        let (mut prices, mut skipped) = (Vec::new(), Vec::new());
        for l in items.iter().filter(|l| l.price.is_some()) {
            let offers = self.offers(ctx, s, &l.sku).await?;
            skipped.extend(
                offers
                    .unpublished
                    .iter()
                    .map(|id| (l.sku.clone(), id.clone())),
            );
            prices.extend(offer_price_request(l, &offers.published));
        }
        for chunk in prices.chunks(BULK_LIMIT) {
            let body = json!({"requests": chunk});
            self.bulk(ctx, s, PRICE_QUANTITY, body).await?;
        }
        Ok(SyncReport::written("listing", items.len()).with_note(unpublished_note(&skipped)))
    }

    /// `inventory.updated`: each SKU's quantity on its inventory item and its published offers, in bulk.
    async fn sync_inventory(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let levels = stock_levels(data)?;
        let (mut requests, mut skipped) = (Vec::new(), Vec::new());
        for level in &levels {
            let offers = self.offers(ctx, s, &level.sku).await?;
            skipped.extend(
                offers
                    .unpublished
                    .iter()
                    .map(|id| (level.sku.clone(), id.clone())),
            );
            requests.push(quantity_request(level, &offers.published));
        }
        for chunk in requests.chunks(BULK_LIMIT) {
            let body = json!({"requests": chunk});
            self.bulk(ctx, s, PRICE_QUANTITY, body).await?;
        }
        Ok(SyncReport::written("inventory", levels.len()).with_note(unpublished_note(&skipped)))
    }

    /// A SKU's offers on the marketplace (none yet is not an error: eBay answers 404).
    async fn offers(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        sku: &str,
    ) -> Result<Offers, ConnectorError> {
        let path = format!(
            "/sell/inventory/v1/offer?sku={}&marketplace_id={}",
            encode(sku),
            encode(s.marketplace_id.as_str())
        );
        let answer = match self.call(ctx, s, Method::Get, path, None).await {
            Ok(answer) => answer,
            Err(ConnectorError::Channel(f)) if f.status == Some(404) => {
                return Ok(Offers::default());
            }
            Err(e) => return Err(e),
        };
        let mut offers = Offers::default();
        for o in answer["offers"].as_array().into_iter().flatten() {
            let Some(id) = o["offerId"].as_str().map(str::to_owned) else {
                continue;
            };
            if o["status"] == "PUBLISHED" {
                offers.published.push(id);
            } else {
                offers.unpublished.push(id);
            }
        }
        Ok(offers)
    }
}

#[async_trait]
impl Connector for Ebay {
    type Settings = Settings;

    fn connector_type(&self) -> &'static str {
        "ebay"
    }

    fn supported_events(&self) -> &'static [&'static str] {
        &["product.updated", "inventory.updated"]
    }

    fn required_credentials(&self) -> &'static [CredentialField] {
        CredentialField::OAUTH_REFRESH
    }

    fn default_rate_limit(&self) -> RateLimit {
        // eBay meters Inventory API calls per day (2M); spread them and keep bursts modest.
        RateLimit {
            per_second: 20.0,
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
            "product.updated" => self.sync_listings(ctx, s, &event.data).await,
            "inventory.updated" => self.sync_inventory(ctx, s, &event.data).await,
            other => Ok(SyncReport::not_synced(other, "eBay")),
        }
    }

    async fn test_connection(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
    ) -> Result<String, ConnectorError> {
        let path = "/sell/inventory/v1/inventory_item?limit=1".to_owned();
        let answer = self.call(ctx, s, Method::Get, path, None).await?;
        Ok(format!(
            "OAuth token obtained; {} inventory item(s) on eBay",
            answer["total"].as_u64().unwrap_or(0)
        ))
    }
}
