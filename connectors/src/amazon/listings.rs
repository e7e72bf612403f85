//! Amazon's outbound listings: `product.updated` → one `putListingsItem` per SKU (a full listing of its product
//! type, checked against the type's required attributes first, or an offer on a catalog item), restating the
//! listing's current availability; `inventory.updated` → `patchListingsItem` `merge` of the quantity.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::Value;
use workflows::catalog::{Listing, PayloadError, listings, stock_levels};
use workflows::connector::SyncFailure;

use super::mapping::{
    ListingKind, Marketplace, ProductTypeDefinition, inventory_patch_body, listing_kind,
    listing_put_body, missing_attributes,
};
use super::{Amazon, Settings, plans};
use crate::channel::{ChannelRequest, Method, encode};
use crate::model::{ConnectorContext, ConnectorError, SyncReport};

/// Product type definitions change rarely: one fetch per marketplace and type a day.
const DEFINITION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Product type definitions by `{marketplace}/{type}`.
pub(super) struct Definitions(Cache<String, Arc<ProductTypeDefinition>>);

impl Default for Definitions {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(1_000)
                .time_to_live(DEFINITION_TTL)
                .build(),
        )
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

impl Amazon {
    /// `product.updated`: every listing of the product, created or replaced.
    pub(super) async fn sync_listings(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let items = listings(data)?;
        for l in &items {
            let kind = listing_kind(l, s.product_type_for(&l.category_ids))?;
            let mut l = l.clone();
            if kind == ListingKind::Offer && l.asin.is_none() {
                l.asin = Some(self.asin_of_ean(ctx, s, &l).await?);
            }
            let body = self.put_body(ctx, s, &l, &kind).await?;
            let path = listing_path(s, &l.sku);
            let op = plans::PUT_LISTINGS_ITEM;
            let answer = self.call(ctx, s, op, Method::Put, path, Some(body)).await?;
            check_listing_answer(&l.sku, &answer)?;
        }
        Ok(SyncReport::written("listing", items.len()))
    }

    /// The `PUT` body of `l`; a full listing missing attributes its product type requires is refused here, naming
    /// them, without a call Amazon would refuse.
    async fn put_body(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        l: &Listing,
        kind: &ListingKind<'_>,
    ) -> Result<Value, ConnectorError> {
        let definition = match kind {
            ListingKind::Product(t) => Some(self.definition(ctx, s, t).await?),
            ListingKind::Offer => None,
        };
        let current = self.current_availability(ctx, s, &l.sku).await?;
        let m = Marketplace {
            marketplace_id: s.marketplace_id.as_str(),
            language_tag: s.language_tag.as_str(),
        };
        let body = listing_put_body(l, &m, kind, definition.as_deref(), current.as_ref());
        if let (ListingKind::Product(t), Some(d)) = (kind, &definition) {
            let missing = missing_attributes(&body, d);
            if !missing.is_empty() {
                return Err(PayloadError {
                    event_type: "product.updated".into(),
                    detail: format!(
                        "Amazon product type {t} requires attributes {} that {} does not have (send them as \
                         variant attributes, or map its category to another product type)",
                        missing.join(", "),
                        l.sku
                    ),
                }
                .into());
            }
        }
        Ok(body)
    }

    /// The ASIN of the catalog item whose EAN is the listing's GTIN (`searchCatalogItems`); none is an error no
    /// retry fixes.
    async fn asin_of_ean(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        l: &Listing,
    ) -> Result<String, ConnectorError> {
        let ean = l.gtin.as_deref().unwrap_or_default();
        let path = format!(
            "/catalog/2022-04-01/items?identifiers={}&identifiersType=EAN&marketplaceIds={}",
            encode(ean),
            encode(s.marketplace_id.as_str())
        );
        let op = plans::SEARCH_CATALOG_ITEMS;
        let found = self.call(ctx, s, op, Method::Get, path, None).await?;
        let asin = found["items"][0]["asin"].as_str().map(str::to_owned);
        asin.ok_or_else(|| {
            PayloadError {
                event_type: "product.updated".into(),
                detail: format!(
                    "Amazon's catalog has no item with EAN {ean} to offer {} on, and no Amazon product type is \
                     configured for it to create one (settings.productTypes, settings.productType)",
                    l.sku
                ),
            }
            .into()
        })
    }

    /// The listing's `fulfillment_availability` on Amazon (`None` when it has no listing yet).
    async fn current_availability(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        sku: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let path = format!("{}&includedData=attributes", listing_path(s, sku));
        let op = plans::GET_LISTINGS_ITEM;
        match self.call(ctx, s, op, Method::Get, path, None).await {
            Ok(item) => Ok(item["attributes"].get("fulfillment_availability").cloned()),
            Err(ConnectorError::Channel(f)) if f.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A product type's definition: `getDefinitionsProductType`, then the JSON Schema its `schema.link` points at
    /// (a presigned link: fetched without the access token). Cached a day.
    async fn definition(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        product_type: &str,
    ) -> Result<Arc<ProductTypeDefinition>, ConnectorError> {
        let key = format!("{}/{product_type}", s.marketplace_id.as_str());
        let load = async {
            let path = format!(
                "/definitions/2020-09-01/productTypes/{}?marketplaceIds={}&requirements=LISTING&locale=DEFAULT",
                encode(product_type),
                encode(s.marketplace_id.as_str())
            );
            let op = plans::GET_DEFINITIONS_PRODUCT_TYPE;
            let answer = self.call(ctx, s, op, Method::Get, path, None).await?;
            let Some(link) = answer["schema"]["link"]["resource"].as_str() else {
                return Err(ConnectorError::Channel(SyncFailure {
                    reason: format!("Amazon's definition of {product_type} has no schema link"),
                    status: Some(200),
                    retry_after: None,
                    permanent: true,
                }));
            };
            let schema = ctx
                .channel
                .call(&ChannelRequest::new(Method::Get, link))
                .await?;
            Ok(Arc::new(ProductTypeDefinition::from_schema(&schema)))
        };
        self.definitions
            .0
            .try_get_with(key, load)
            .await
            .map_err(|e: Arc<ConnectorError>| (*e).clone())
    }

    /// `inventory.updated`: each SKU's quantity, merged into its availability.
    pub(super) async fn sync_inventory(
        &self,
        ctx: &ConnectorContext<'_>,
        s: &Settings,
        data: &Value,
    ) -> Result<SyncReport, ConnectorError> {
        let levels = stock_levels(data)?;
        for level in &levels {
            let body = Some(inventory_patch_body(level.quantity));
            let path = listing_path(s, &level.sku);
            let op = plans::PATCH_LISTINGS_ITEM;
            let answer = self.call(ctx, s, op, Method::Patch, path, body).await?;
            check_listing_answer(&level.sku, &answer)?;
        }
        Ok(SyncReport::written("inventory", levels.len()))
    }
}

/// A Listings Items answer of `status: INVALID` is a refusal of the listing itself, with Amazon's issues (and the
/// attributes they name).
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
            let attributes = i["attributeNames"].as_array().map(|a| {
                let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                format!(" [{}]", names.join(", "))
            });
            format!(
                "{}: {}{}",
                i["code"].as_str().unwrap_or("?"),
                i["message"].as_str().unwrap_or(""),
                attributes.unwrap_or_default()
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
