//! An Amazon config's typed settings and the deployment's Amazon endpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::mapping::OFFER_PRODUCT_TYPE;
use crate::settings::NonBlank;

/// Settings of an Amazon config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Merchant token (seller id).
    pub seller_id: NonBlank,
    /// Marketplace, e.g. `ATVPDKIKX0DER` (US).
    pub marketplace_id: NonBlank,
    /// Which of the deployment's SP-API regional endpoints serves the marketplace.
    #[serde(default)]
    pub region: Region,
    /// Amazon product type of full listings whose category is not in `productTypes` (e.g. `SHOES`). Without one,
    /// such products are listed as offers on existing catalog items (by ASIN or GTIN). `PRODUCT`, the default of
    /// older versions, cannot create products and counts as none.
    pub product_type: Option<NonBlank>,
    /// Amazon product type per platform category id (`{"cat-shoes": "SHOES"}`; the product's `categoryIds`).
    #[serde(default)]
    pub product_types: BTreeMap<String, NonBlank>,
    /// Language of titles and descriptions, e.g. `en_US`.
    #[serde(default = "default_language")]
    pub language_tag: NonBlank,
    /// First poll reads orders updated after this (default: one day before the first poll).
    pub orders_created_after: Option<DateTime<Utc>>,
}

impl Settings {
    /// The product type of a listing in `categories`: the first mapped category's, else the config's (never
    /// `PRODUCT`).
    pub fn product_type_for(&self, categories: &[String]) -> Option<&str> {
        categories
            .iter()
            .find_map(|c| self.product_types.get(c))
            .or(self.product_type.as_ref())
            .map(NonBlank::as_str)
            .filter(|t| *t != OFFER_PRODUCT_TYPE)
    }
}

fn default_language() -> NonBlank {
    NonBlank::known("en_US")
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
