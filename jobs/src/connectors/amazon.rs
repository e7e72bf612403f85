//! Amazon Selling Partner API, both ways. Outbound: listings (Listings Items API `PUT`), quantities (`PATCH`
//! of `fulfillment_availability`) and shipment confirmations (Orders API v0). Inbound: new orders (Orders API v0,
//! `CreatedAfter` cursor, `NextToken` pages). Auth: Login with Amazon refresh token → access token, cached.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use workflows::catalog::{fulfillment, listings, stock_levels};
use workflows::channels::amazon::{
    Marketplace, inventory_patch_body, listing_put_body, order_event_data,
    shipment_confirmation_body,
};
use workflows::connector::SyncFailure;
use workflows::ratelimit::RateLimit;

use super::{
    api_request, cached_token, call_with_token, encode, refuse_endpoint_settings, token_key,
};
use crate::connector::tokens::TokenCache;
use crate::connector::{
    ChannelRequest, ConnectorAdapter, ConnectorContext, ConnectorError, ConnectorEvent,
    CredentialField, Method, PollReport, SyncReport, parse_settings,
};

/// Event type of an order pulled from Amazon.
pub const ORDER_RECEIVED: &str = "marketplace.order.received";
/// Order pages read per poll (100 orders each); the cursor carries on at the next poll.
const MAX_PAGES: usize = 20;

/// Settings of an Amazon config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Merchant token (seller id).
    pub seller_id: String,
    /// Marketplace, e.g. `ATVPDKIKX0DER` (US).
    pub marketplace_id: String,
    /// Which of the deployment's SP-API regional endpoints serves the marketplace.
    #[serde(default)]
    pub region: Region,
    /// Product type of listings.
    #[serde(default = "default_product_type")]
    pub product_type: String,
    /// Language of titles and descriptions.
    #[serde(default = "default_language")]
    pub language_tag: String,
    /// First poll reads orders created after this (default: one day before the first poll).
    pub orders_created_after: Option<DateTime<Utc>>,
}

/// The SP-API regions (each serves a set of marketplaces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// North America (US, CA, MX, BR).
    #[default]
    Na,
    /// Europe, Middle East, India.
    Eu,
    /// Far East (JP, AU, SG).
    Fe,
}

/// Where Amazon's APIs are: deployment configuration (`[connectors.amazon]`), never a connector setting, so no API
/// call can send a config's refresh token and client secret anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Endpoints {
    /// Login with Amazon token endpoint.
    pub lwa_endpoint: String,
    /// SP-API, North America.
    pub sp_api_na: String,
    /// SP-API, Europe.
    pub sp_api_eu: String,
    /// SP-API, Far East.
    pub sp_api_fe: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            lwa_endpoint: "https://api.amazon.com/auth/o2/token".into(),
            sp_api_na: "https://sellingpartnerapi-na.amazon.com".into(),
            sp_api_eu: "https://sellingpartnerapi-eu.amazon.com".into(),
            sp_api_fe: "https://sellingpartnerapi-fe.amazon.com".into(),
        }
    }
}

impl Endpoints {
    /// The SP-API base URL of `region`.
    pub fn sp_api(&self, region: Region) -> &str {
        match region {
            Region::Na => &self.sp_api_na,
            Region::Eu => &self.sp_api_eu,
            Region::Fe => &self.sp_api_fe,
        }
    }
}
fn default_product_type() -> String {
    "PRODUCT".into()
}
fn default_language() -> String {
    "en_US".into()
}

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
                self.tokens.forget(&token_key(ctx));
                f.permanent = false;
                Err(ConnectorError::Channel(f))
            }
            other => other,
        }
    }

    fn listing_path(s: &Settings, sku: &str) -> String {
        format!(
            "/listings/2021-08-01/items/{}/{}?marketplaceIds={}",
            encode(&s.seller_id),
            encode(sku),
            encode(&s.marketplace_id)
        )
    }
}

/// A Listings Items answer of `status: INVALID` is a refusal of the listing itself.
fn check_listing_answer(sku: &str, answer: &Value) -> Result<(), ConnectorError> {
    if answer["status"] == "INVALID" {
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
        return Err(ConnectorError::Channel(SyncFailure {
            reason: format!("Amazon refused listing {sku}: {}", issues.join("; ")),
            status: Some(200),
            retry_after: None,
            permanent: true,
        }));
    }
    Ok(())
}

fn report(entity: &str, records: u32, skipped: Option<String>) -> SyncReport {
    SyncReport {
        entity_type: entity.to_owned(),
        records,
        skipped,
    }
}

#[async_trait]
impl ConnectorAdapter for Amazon {
    fn connector_type(&self) -> &'static str {
        "amazon"
    }

    fn supported_events(&self) -> &'static [&'static str] {
        &["product.updated", "inventory.updated", "order.fulfilled"]
    }

    fn required_credentials(&self) -> &'static [CredentialField] {
        &[
            CredentialField::ApiKey,
            CredentialField::ApiSecret,
            CredentialField::RefreshToken,
        ]
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

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        refuse_endpoint_settings(settings, "amazon")?;
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
                let m = Marketplace {
                    marketplace_id: &s.marketplace_id,
                    language_tag: &s.language_tag,
                    product_type: &s.product_type,
                };
                let items = listings(&event.data)?;
                for l in &items {
                    let answer = self
                        .call(
                            ctx,
                            &s,
                            Method::Put,
                            Self::listing_path(&s, &l.sku),
                            Some(listing_put_body(l, &m)),
                        )
                        .await?;
                    check_listing_answer(&l.sku, &answer)?;
                }
                Ok(report("listing", items.len() as u32, None))
            }
            "inventory.updated" => {
                let levels = stock_levels(&event.data)?;
                for level in &levels {
                    let body = inventory_patch_body(level.quantity, &s.product_type);
                    let answer = self
                        .call(
                            ctx,
                            &s,
                            Method::Patch,
                            Self::listing_path(&s, &level.sku),
                            Some(body),
                        )
                        .await?;
                    check_listing_answer(&level.sku, &answer)?;
                }
                Ok(report("inventory", levels.len() as u32, None))
            }
            "order.fulfilled" => {
                let f = fulfillment(&event.data)?;
                let Some((order_id, body)) = shipment_confirmation_body(&f, &s.marketplace_id)?
                else {
                    return Ok(report("shipment", 0, Some("not an Amazon order".into())));
                };
                // Idempotency: a retry after a confirmation whose answer was lost must not confirm twice.
                let order = self
                    .call(
                        ctx,
                        &s,
                        Method::Get,
                        format!("/orders/v0/orders/{}", encode(&order_id)),
                        None,
                    )
                    .await?;
                if order["payload"]["OrderStatus"] == "Shipped" {
                    return Ok(report(
                        "shipment",
                        0,
                        Some(format!("order {order_id} is already confirmed as shipped")),
                    ));
                }
                let path = format!(
                    "/orders/v0/orders/{}/shipmentConfirmation",
                    encode(&order_id)
                );
                self.call(ctx, &s, Method::Post, path, Some(body)).await?;
                Ok(report("shipment", 1, None))
            }
            other => Ok(report(
                workflows::connector::entity_of(other),
                0,
                Some(format!("{other} is not synced to Amazon")),
            )),
        }
    }

    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        let s: Settings = parse_settings(&ctx.config.settings)?;
        let since = cursor
            .and_then(|c| {
                DateTime::parse_from_rfc3339(c)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
            .or(s.orders_created_after)
            .unwrap_or(ctx.now - chrono::Duration::days(1));
        let base = format!(
            "/orders/v0/orders?MarketplaceIds={}",
            encode(&s.marketplace_id)
        );
        let mut path = format!(
            "{base}&CreatedAfter={}&MaxResultsPerPage=100",
            encode(&since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        );
        let (mut records, mut newest) = (Vec::new(), since);
        let config_id = ctx.config.config_id.to_string();
        for _ in 0..MAX_PAGES {
            let answer = self.call(ctx, &s, Method::Get, path, None).await?;
            let payload = &answer["payload"];
            for order in payload["Orders"].as_array().into_iter().flatten() {
                let Some((id, data)) = order_event_data(order, &config_id) else {
                    continue;
                };
                if let Some(t) = order["PurchaseDate"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    newest = newest.max(t.with_timezone(&Utc));
                }
                records.push(crate::connector::PolledRecord {
                    external_id: id,
                    event_type: ORDER_RECEIVED.into(),
                    data,
                });
            }
            match payload["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => path = format!("{base}&NextToken={}", encode(token)),
                None => break,
            }
        }
        // CreatedAfter is inclusive, so the newest order is seen again next time; published records are deduplicated.
        let cursor = Some(newest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Ok(PollReport {
            entity_type: "order".into(),
            records,
            cursor,
        })
    }

    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        let s: Settings = parse_settings(&ctx.config.settings)?;
        let answer = self
            .call(
                ctx,
                &s,
                Method::Get,
                "/sellers/v1/marketplaceParticipations".into(),
                None,
            )
            .await?;
        let n = answer["payload"].as_array().map_or(0, Vec::len);
        Ok(format!(
            "LWA token obtained; seller participates in {n} marketplace(s)"
        ))
    }
}
