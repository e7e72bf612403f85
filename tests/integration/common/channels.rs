//! The fake channels (Amazon, eBay and Google APIs on one local server) come from the `connectors` crate, feature
//! `fake`, each marketplace's routes beside its adapter. This module re-exports them and adds how a test points a
//! service at them: its configuration, or the environment of a service process.

pub use connectors::fake::*;
use integration_service::config::Config;

/// Pointing a service's channel endpoints (deployment configuration) at a fake.
pub trait PointServiceAt {
    /// Point `config`'s channel endpoints at this fake.
    fn configure(&self, config: &mut Config);
    /// The same, as environment variables of a service process.
    fn env(&self) -> Vec<(String, String)>;
}

impl PointServiceAt for FakeChannels {
    fn configure(&self, config: &mut Config) {
        let c = &mut config.connectors;
        for (key, url) in self.endpoints() {
            let slot = match key {
                "amazon.lwa_endpoint" => &mut c.amazon.lwa_endpoint,
                "amazon.sp_api_na" => &mut c.amazon.sp_api_na,
                "amazon.sp_api_eu" => &mut c.amazon.sp_api_eu,
                "amazon.sp_api_fe" => &mut c.amazon.sp_api_fe,
                "ebay.api" => &mut c.ebay.api,
                "ebay.token_url" => &mut c.ebay.token_url,
                "google_shopping.api" => &mut c.google_shopping.api,
                _ => &mut c.google_shopping.token_url,
            };
            *slot = url;
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.endpoints()
            .into_iter()
            .map(|(key, url)| {
                let var = key.to_uppercase().replace('.', "__");
                (format!("SS3_CONNECTORS__{var}"), url)
            })
            .collect()
    }
}
