//! Amazon Selling Partner API, both ways. Outbound: listings (Listings Items API `PUT`, as full listings of a
//! product type or offers on catalog items), quantities (`PATCH` `merge` of `fulfillment_availability`) and
//! shipment confirmations (Orders API v0 `confirmShipment`). Inbound: orders per status (Orders API v2026-01-01
//! `searchOrders`, `lastUpdatedAfter` cursor, `paginationToken` pages, progress kept page by page). Auth: Login
//! with Amazon refresh token → access token, cached. Every operation is metered with its usage plan ([`plans`]).

#[cfg(feature = "fake")]
pub mod fake;
mod listings;
pub mod mapping;
pub mod plans;
mod poll;
pub mod settings;
mod shipments;

use async_trait::async_trait;
use serde_json::Value;
use workflows::ratelimit::RateLimit;

pub use self::settings::{Endpoints, Region, Settings};
use crate::adapter::Connector;
use crate::channel::{ChannelRequest, Method, Operation, api_request};
use crate::credentials::CredentialField;
use crate::model::{ConnectorContext, ConnectorError, ConnectorEvent, PollReport, SyncReport};
use crate::tokens::{TokenCache, cached_token, call_with_token, token_key};

/// Event type of an order pulled from Amazon (once per order status).
pub const ORDER_RECEIVED: &str = "marketplace.order.received";

/// The Amazon adapter.
#[derive(Default)]
pub struct Amazon {
    tokens: TokenCache,
    endpoints: Endpoints,
    definitions: listings::Definitions,
}

impl Amazon {
    /// An adapter calling these endpoints.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            ..Self::default()
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

    /// One SP-API call of `op` with the config's access token.
    async fn call(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        op: Operation,
        method: Method,
        path_and_query: String,
        body: Option<Value>,
    ) -> Result<Value, ConnectorError> {
        let token = self.access_token(ctx).await?;
        let base = self.endpoints.sp_api(s.region);
        let request = api_request(method, base, &path_and_query, body)
            .header("x-amz-access-token", token)
            .operation(op);
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
        // The config's overall pace: the Listings Items API's plan, the most used; each operation also takes turns
        // from its own usage plan (`plans`).
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
        let op = plans::GET_MARKETPLACE_PARTICIPATIONS;
        let answer = self.call(ctx, s, op, Method::Get, path, None).await?;
        let n = answer["payload"].as_array().map_or(0, Vec::len);
        Ok(format!(
            "LWA token obtained; seller participates in {n} marketplace(s)"
        ))
    }
}
