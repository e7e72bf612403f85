//! Parse, don't validate: a config's stored JSON settings become an adapter's typed settings plus the settings
//! every connector shares (`rateLimit`). The API parses with [`Origin::Api`] (strict); the worker parses stored
//! settings with [`Origin::Stored`], which ignores what older versions accepted and this one refuses.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use workflows::ratelimit::RateLimit;

use crate::model::ConnectorError;

/// Settings that used to name URLs. Pointing a config's credentials at another host would read them back, so the
/// API refuses them; stored configs that still carry them are parsed without them.
const ENDPOINT_KEYS: [&str; 3] = ["endpoint", "lwaEndpoint", "tokenUrl"];

/// Why settings were refused. The messages are the API's `invalid_settings` details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// No adapter serves this connector type.
    #[error("unknown connector type {0}")]
    UnknownType(String),
    /// Settings are a JSON value other than an object.
    #[error("settings must be a JSON object")]
    NotAnObject,
    /// A URL setting: endpoints are deployment configuration.
    #[error(
        "settings.{key} is not a connector setting: channel endpoints are deployment configuration \
         ([connectors.{connector_type}] in the service's config)"
    )]
    Endpoint {
        /// The refused key.
        key: &'static str,
        /// The config's connector type (names its config section).
        connector_type: String,
    },
    /// A field is missing, unknown or of the wrong type or value.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl From<SettingsError> for ConnectorError {
    fn from(e: SettingsError) -> Self {
        ConnectorError::Settings(e.to_string())
    }
}

/// Where settings come from, which decides how strictly they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A create or update through the API: everything unknown is refused.
    Api,
    /// A stored config, read by the worker: endpoint keys and a malformed `rateLimit` (both accepted by older
    /// versions) are ignored, as they always were.
    Stored,
}

/// `settings.rateLimit`: calls per second and burst, overriding the adapter's default.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitSetting {
    /// Sustained calls per second (positive).
    per_second: f64,
    /// Calls allowed at once after a quiet period.
    #[serde(default = "one")]
    burst: u32,
}

fn one() -> u32 {
    1
}

fn rate_limit(raw: Value) -> Result<RateLimit, SettingsError> {
    let r: RateLimitSetting = serde_json::from_value(raw)
        .map_err(|e| SettingsError::Invalid(format!("rateLimit: {e}")))?;
    if !(r.per_second.is_finite() && r.per_second > 0.0) {
        return Err(SettingsError::Invalid(
            "rateLimit.perSecond must be a positive number".into(),
        ));
    }
    Ok(RateLimit {
        per_second: r.per_second,
        burst: r.burst,
    })
}

/// Parse `settings` of a `connector_type` config: the shared rate limit, and the rest as the adapter's `T`.
pub fn parse<T: DeserializeOwned>(
    connector_type: &str,
    settings: &Value,
    origin: Origin,
) -> Result<(Option<RateLimit>, T), SettingsError> {
    let mut map: Map<String, Value> = settings
        .as_object()
        .cloned()
        .ok_or(SettingsError::NotAnObject)?;
    for key in ENDPOINT_KEYS {
        if map.remove(key).is_some() && origin == Origin::Api {
            return Err(SettingsError::Endpoint {
                key,
                connector_type: connector_type.to_owned(),
            });
        }
    }
    let limit = match (map.remove("rateLimit").map(rate_limit), origin) {
        (None, _) => None,
        (Some(Ok(limit)), _) => Some(limit),
        (Some(Err(e)), Origin::Api) => return Err(e),
        (Some(Err(e)), Origin::Stored) => {
            tracing::warn!(error = %e, "ignoring a stored config's malformed rateLimit");
            None
        }
    };
    Ok((limit, specific(map, origin)?))
}

/// The adapter's part. Stored settings may carry keys older versions accepted and ignored: each unknown key is
/// dropped (with a warning) and the rest parsed again, so only the API refuses them.
fn specific<T: DeserializeOwned>(
    mut map: Map<String, Value>,
    origin: Origin,
) -> Result<T, SettingsError> {
    loop {
        let e = match serde_json::from_value(Value::Object(map.clone())) {
            Ok(parsed) => return Ok(parsed),
            Err(e) => e.to_string(),
        };
        let unknown = e
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_owned());
        match unknown {
            Some(key) if origin == Origin::Stored && map.remove(&key).is_some() => {
                tracing::warn!(%key, "ignoring an unknown key of stored connector settings");
            }
            _ => return Err(SettingsError::Invalid(e)),
        }
    }
}

/// A string setting checked once, when parsed: `$name` holds only strings `$check` accepts (its `Err` is the
/// message the API shows). Every adapter's id settings are declared with it, so they parse the same way.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as it was given (and checked).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map(|()| Self(value))
            }
        }
    };
}
pub(crate) use checked_string;

checked_string!(
    /// A string setting that must not be blank (ids the marketplace needs).
    NonBlank,
    |value| {
        if value.trim().is_empty() {
            Err("must not be blank".into())
        } else {
            Ok(())
        }
    }
);

impl NonBlank {
    /// A default the code knows is not blank.
    pub(crate) fn known(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        seller_id: NonBlank,
    }

    #[test]
    fn the_api_refuses_endpoints_unknown_fields_and_bad_rate_limits() {
        let ok = parse::<Sample>("t", &json!({"sellerId": "S"}), Origin::Api);
        assert!(matches!(ok, Ok((None, ref s)) if s.seller_id.as_str() == "S"));
        let endpoint =
            parse::<Sample>("t", &json!({"sellerId": "S", "tokenUrl": "x"}), Origin::Api);
        assert!(matches!(
            endpoint,
            Err(SettingsError::Endpoint {
                key: "tokenUrl",
                ..
            })
        ));
        let unknown = parse::<Sample>("t", &json!({"sellerId": "S", "x": 1}), Origin::Api);
        assert!(matches!(unknown, Err(SettingsError::Invalid(_))));
        let blank = parse::<Sample>("t", &json!({"sellerId": " "}), Origin::Api);
        assert!(matches!(blank, Err(SettingsError::Invalid(_))));
        let bad_limit = json!({"sellerId": "S", "rateLimit": {"perSecond": 0}});
        assert!(parse::<Sample>("t", &bad_limit, Origin::Api).is_err());
        assert_eq!(
            parse::<Sample>("t", &json!([]), Origin::Api).err(),
            Some(SettingsError::NotAnObject)
        );
    }

    #[test]
    fn stored_settings_ignore_what_older_versions_accepted() {
        let stored = json!({"sellerId": "S", "endpoint": "x", "rateLimit": "fast", "note": 1});
        let (limit, s) = parse::<Sample>("t", &stored, Origin::Stored).expect("parses");
        assert_eq!((limit, s.seller_id.as_str()), (None, "S"));
        let limited = json!({"sellerId": "S", "rateLimit": {"perSecond": 2.5}});
        let (limit, _) = parse::<Sample>("t", &limited, Origin::Stored).expect("parses");
        assert_eq!(
            limit,
            Some(RateLimit {
                per_second: 2.5,
                burst: 1
            })
        );
    }
}
