//! A Google Shopping config's typed settings and the deployment's Google endpoints.

use serde::Deserialize;

use crate::settings::{NonBlank, checked_string};

/// Settings of a Google Shopping config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Merchant Center account id.
    pub merchant_id: NumericId,
    /// Id of the API data source products are inserted into.
    pub data_source_id: NumericId,
    /// Two-letter content language, e.g. `en`.
    #[serde(default = "default_language")]
    pub content_language: NonBlank,
    /// Feed label, e.g. `US`.
    #[serde(default = "default_feed_label")]
    pub feed_label: NonBlank,
    /// A person's email (not the service account's) that "test connection" registers as the developer contact when
    /// it registers the service account's Cloud project with the merchant account (`registerGcp`, required once
    /// before any other Merchant API call).
    pub developer_email: Option<DeveloperEmail>,
}

fn default_language() -> NonBlank {
    NonBlank::known("en")
}
fn default_feed_label() -> NonBlank {
    NonBlank::known("US")
}

checked_string!(
    /// A Merchant Center id (account, data source): decimal digits only.
    NumericId,
    |value| {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("{value:?} is not a Merchant Center id (digits)"))
        }
    }
);

checked_string!(
    /// A developer contact's email: an address, and not a service account's (Google cannot email those).
    DeveloperEmail,
    |value| {
        let address = value
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
        if !address || value.chars().any(char::is_whitespace) {
            Err(format!("{value:?} is not an email address"))
        } else if value.ends_with(".gserviceaccount.com") {
            Err(format!("{value:?} is a service account; Google needs a person's email as developer contact"))
        } else {
            Ok(())
        }
    }
);

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
