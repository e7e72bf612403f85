//! An eBay config's typed settings and the deployment's eBay endpoints.

use serde::Deserialize;

use crate::settings::{NonBlank, checked_string};

/// Settings of an eBay config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Marketplace of the offers, e.g. `EBAY_US`.
    #[serde(default = "default_marketplace")]
    pub marketplace_id: MarketplaceId,
    /// Locale of inventory items, e.g. `en_US`.
    #[serde(default = "default_locale")]
    pub locale: NonBlank,
    /// `Content-Language` of requests, e.g. `en-US`.
    #[serde(default = "default_language")]
    pub content_language: NonBlank,
}

fn default_marketplace() -> MarketplaceId {
    MarketplaceId("EBAY_US".into())
}
fn default_locale() -> NonBlank {
    NonBlank::known("en_US")
}
fn default_language() -> NonBlank {
    NonBlank::known("en-US")
}

checked_string!(
    /// An eBay marketplace id: `EBAY_` and upper-case letters or underscores (`EBAY_US`, `EBAY_MOTORS_US`).
    MarketplaceId,
    |value| {
        let valid = value.strip_prefix("EBAY_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        });
        if valid {
            Ok(())
        } else {
            Err(format!(
                "{value:?} is not an eBay marketplace id (EBAY_US, EBAY_DE…)"
            ))
        }
    }
);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marketplace_ids_are_ebay_ids() {
        for ok in ["EBAY_US", "EBAY_MOTORS_US"] {
            assert!(MarketplaceId::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for bad in ["", "EBAY_", "US", "EBAY_us", "EBAY_US/../x"] {
            assert!(MarketplaceId::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
