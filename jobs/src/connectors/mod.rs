//! The sales channels. Each module is one [`crate::connector::ConnectorAdapter`]; shared plumbing is here.

pub mod amazon;
pub mod ebay;
pub mod google;

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::connector::channel::is_unauthorized;
use crate::connector::tokens::TokenCache;
use crate::connector::{ChannelRequest, ConnectorContext, ConnectorError, Method};

/// Every channel's API locations: deployment configuration (`[connectors.amazon]`, `[connectors.ebay]`,
/// `[connectors.google_shopping]`), defaulting to the real hosts. Settings of a connector never name a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ChannelEndpoints {
    /// Amazon SP-API and Login with Amazon.
    pub amazon: amazon::Endpoints,
    /// eBay.
    pub ebay: ebay::Endpoints,
    /// Google Merchant API and Google OAuth.
    pub google_shopping: google::Endpoints,
}

impl ChannelEndpoints {
    /// Every configured URL, with the config key it comes from.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        let a = &self.amazon;
        vec![
            ("connectors.amazon.lwa_endpoint", a.lwa_endpoint.as_str()),
            ("connectors.amazon.sp_api_na", a.sp_api_na.as_str()),
            ("connectors.amazon.sp_api_eu", a.sp_api_eu.as_str()),
            ("connectors.amazon.sp_api_fe", a.sp_api_fe.as_str()),
            ("connectors.ebay.api", self.ebay.api.as_str()),
            ("connectors.ebay.token_url", self.ebay.token_url.as_str()),
            (
                "connectors.google_shopping.api",
                self.google_shopping.api.as_str(),
            ),
            (
                "connectors.google_shopping.token_url",
                self.google_shopping.token_url.as_str(),
            ),
        ]
    }
}

/// Settings that used to name URLs (`endpoint`, `lwaEndpoint`, `tokenUrl`) are refused at setup: pointing a
/// config's credentials at another host would read them back. Stored configs that still carry them are ignored.
pub fn refuse_endpoint_settings(settings: &Value, connector_type: &str) -> Result<(), String> {
    for key in ["endpoint", "lwaEndpoint", "tokenUrl"] {
        if settings.get(key).is_some() {
            return Err(format!(
                "settings.{key} is not a connector setting: channel endpoints are deployment configuration \
                 ([connectors.{connector_type}] in the service's config)"
            ));
        }
    }
    Ok(())
}

/// Percent-encode one URL path segment or query value (everything but RFC 3986 unreserved characters).
pub fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request to `base` + `path` (query included), with a JSON body when given.
pub fn api_request(method: Method, base: &str, path: &str, body: Option<Value>) -> ChannelRequest {
    let request = ChannelRequest::new(method, format!("{}{path}", base.trim_end_matches('/')));
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

/// Read an OAuth token answer (`access_token`, `expires_in`).
pub fn token_answer(answer: &Value) -> Result<(String, Duration), ConnectorError> {
    let token = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectorError::Credentials("token endpoint answered without access_token".into())
        })?;
    let lifetime = answer["expires_in"].as_u64().unwrap_or(3600);
    Ok((token.to_owned(), Duration::from_secs(lifetime)))
}

/// The config's cached access token, or one fetched with the request `build` makes: built only on a cache miss,
/// so a signed assertion (Google) is not re-signed for every call. At the token endpoint, a refused grant or client
/// (400/401/403) is a credentials problem, not a retry.
pub async fn cached_token(
    ctx: &ConnectorContext<'_>,
    tokens: &TokenCache,
    build: impl FnOnce() -> Result<ChannelRequest, ConnectorError>,
) -> Result<String, ConnectorError> {
    tokens
        .get_or_fetch(&token_key(ctx), || async {
            match ctx.channel.call(&build()?).await {
                Ok(answer) => token_answer(&answer),
                Err(ConnectorError::Channel(f)) if matches!(f.status, Some(400 | 401 | 403)) => {
                    Err(ConnectorError::Credentials(format!(
                        "the channel refused the credentials: {}",
                        f.reason
                    )))
                }
                Err(e) => Err(e),
            }
        })
        .await
}

/// The cache key of a config's access token.
pub fn token_key(ctx: &ConnectorContext<'_>) -> String {
    format!("{}:{}", ctx.config.config_id, ctx.credentials.fingerprint())
}

/// Call with a bearer token; a 401 drops the cached token so the retry fetches a new one.
pub async fn call_with_token(
    ctx: &ConnectorContext<'_>,
    tokens: &TokenCache,
    request: &ChannelRequest,
) -> Result<Value, ConnectorError> {
    let result = ctx.channel.call(request).await;
    if let Err(e) = &result
        && is_unauthorized(e)
    {
        tokens.forget(&token_key(ctx));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode("TS-42_a.b~"), "TS-42_a.b~");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(
            encode("2026-11-20T10:00:00+00:00"),
            "2026-11-20T10%3A00%3A00%2B00%3A00"
        );
    }
}
