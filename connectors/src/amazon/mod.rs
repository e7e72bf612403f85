//! Amazon Selling Partner API, both ways. Outbound: listings (Listings Items API `PUT`), quantities (`PATCH`
//! of `fulfillment_availability`) and shipment confirmations (Orders API v0). Inbound: new orders (Orders API v0,
//! `CreatedAfter` cursor, `NextToken` pages). Auth: Login with Amazon refresh token → access token, cached.

#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
mod poll;
pub mod settings;

use async_trait::async_trait;
use serde_json::Value;
use workflows::catalog::{fulfillment, listings, stock_levels};
use workflows::connector::SyncFailure;
use workflows::ratelimit::RateLimit;

use self::mapping::{
    Marketplace, inventory_patch_body, listing_put_body, shipment_confirmation_body,
};
pub use self::settings::{Endpoints, Region, Settings};
use crate::adapter::Connector;
use crate::channel::{ChannelRequest, Method, api_request, encode};
use crate::credentials::CredentialField;
use crate::model::{ConnectorContext, ConnectorError, ConnectorEvent, PollReport, SyncReport};
use crate::tokens::{TokenCache, cached_token, call_with_token, token_key};

/// Event type of an order pulled from Amazon.
pub const ORDER_RECEIVED: &str = "marketplace.order.received";

/// The Amazon adapter.
#[derive(Default)]
pub struct Amazon {
    tokens: TokenCache,
    endpoints: Endpoints,
}

impl Amazon {
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
            Ok(
                ChannelRequest::new(Method::Post, &self.endpoints.lwa_endpoint).form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.require(CredentialField::RefreshToken)?),
                    ("client_id", c.require(CredentialField::ApiKey)?),
                    ("client_secret", c.require(CredentialField::ApiSecret)?),
                ]),
            )
        })
        .await
    }

    /// One SP-API call with the config's access token.
    async fn call(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        method: Method,
        path_and_query: String,
        body: Option<Value>,
    ) -> Result<Value, ConnectorError> {
        let token = self.access_token(ctx).await?;
        let base = self.endpoints.sp_api(s.region);
        let request =
            api_request(method, base, &path_and_query, body).header("x-amz-access-token", token);
        match call_with_token(ctx, &self.tokens, &request).await {
            // SP-API answers an expired or revoked access token with 403 `Unauthorized`, not 401: drop the token and
            // retry on the schedule (a role truly missing still dead-letters after the fifth attempt).
            Err(ConnectorError::Channel(mut f)) if f.status == Some(403) => {
                self.tokens.forget(&token_key(ctx)).await;
                f.permanent = false;
                Err(ConnectorError::Channel(f))
            }
            other => other,
        }
    }

    fn listing_path(s: &Settings, sku: &str) -> String {
        format!(
            "/listings/2021-08-01/items/{}/{}?marketplaceIds={}",
            encode(s.seller_id.as_str()),
            encode(sku),
            encode(s.marketplace_id.as_str())
        )
    }

    /// `product.updated`: every listing of the product, created or replaced.
    async fn sync_listings(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let m = Marketplace {
            marketplace_id: s.marketplace_id.as_str(),
            language_tag: s.language_tag.as_str(),
            product_type: s.product_type.as_str(),
        };
        let items = listings(data)?;
        for l in &items {
            let path = Self::listing_path(s, &l.sku);
            let body = Some(listing_put_body(l, &m));
            let answer = self.call(ctx, s, Method::Put, path, body).await?;
            check_listing_answer(&l.sku, &answer)?;
        }
        Ok(SyncReport::written("listing", items.len()))
    }

    /// `inventory.updated`: each SKU's quantity.
    async fn sync_inventory(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let levels = stock_levels(data)?;
        for level in &levels {
            let body = Some(inventory_patch_body(
                level.quantity,
                s.product_type.as_str(),
            ));
            let path = Self::listing_path(s, &level.sku);
            let answer = self.call(ctx, s, Method::Patch, path, body).await?;
            check_listing_answer(&level.sku, &answer)?;
        }
        Ok(SyncReport::written("inventory", levels.len()))
    }

    /// `order.fulfilled`: confirm the shipment of an order that came from Amazon, once.
    async fn confirm_shipment(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let f = fulfillment(data)?;
        let Some((order_id, body)) = shipment_confirmation_body(&f, s.marketplace_id.as_str())?
        else {
            return Ok(SyncReport::skipped("shipment", "not an Amazon order"));
        };
        // Idempotency: a retry after a confirmation whose answer was lost must not confirm twice.
        let order_path = format!("/orders/v0/orders/{}", encode(&order_id));
        let order = self.call(ctx, s, Method::Get, order_path, None).await?;
        if order["payload"]["OrderStatus"] == "Shipped" {
            let why = format!("order {order_id} is already confirmed as shipped");
            return Ok(SyncReport::skipped("shipment", why));
        }
        let path = format!(
            "/orders/v0/orders/{}/shipmentConfirmation",
            encode(&order_id)
        );
        self.call(ctx, s, Method::Post, path, Some(body)).await?;
        Ok(SyncReport::written("shipment", 1))
    }
}

/// A Listings Items answer of `status: INVALID` is a refusal of the listing itself.
fn check_listing_answer(sku: &str, answer: &Value) -> Result<(), ConnectorError> {
    if answer["status"] != "INVALID" {
        return Ok(());
    }
    let issues: Vec<String> = answer["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["severity"] == "ERROR")
        .map(|i| {
            format!(
                "{}: {}",
                i["code"].as_str().unwrap_or("?"),
                i["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(ConnectorError::Channel(SyncFailure {
        reason: format!("Amazon refused listing {sku}: {}", issues.join("; ")),
        status: Some(200),
        retry_after: None,
        permanent: true,
    }))
}

#[async_trait]
impl Connector for Amazon {
    type Settings = Settings;

    fn connector_type(&self) -> &'static str {
        "amazon"
    }

    fn supported_events(&self) -> &'static [&'static str] {
        &["product.updated", "inventory.updated", "order.fulfilled"]
    }

    fn required_credentials(&self) -> &'static [CredentialField] {
        CredentialField::OAUTH_REFRESH
    }

    fn default_rate_limit(&self) -> RateLimit {
        // Listings Items API: 5 requests/s, burst 10 (the most restrictive of the operations used per call).
        RateLimit {
            per_second: 5.0,
            burst: 10,
        }
    }

    fn polls(&self) -> bool {
        true
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
            "order.fulfilled" => self.confirm_shipment(ctx, s, &event.data).await,
            other => Ok(SyncReport::not_synced(other, "Amazon")),
        }
    }

    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        self.poll_orders(ctx, s, cursor).await
    }

    async fn test_connection(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
    ) -> Result<String, ConnectorError> {
        let path = "/sellers/v1/marketplaceParticipations".to_owned();
        let answer = self.call(ctx, s, Method::Get, path, None).await?;
        let n = answer["payload"].as_array().map_or(0, Vec::len);
        Ok(format!(
            "LWA token obtained; seller participates in {n} marketplace(s)"
        ))
    }
}
