//! API credentials: the scope list, token formats, and parsing what a caller presents. Pure; no I/O.
//!
//! Formats (all characters URL- and header-safe, all under bcrypt's 72-byte limit):
//! - API key: `ss3_live_<prefix>_<secret>`: `prefix` 12 base62 characters (public, the lookup key, ~71 bits),
//!   `secret` 32 base62 characters (~190 bits, only its bcrypt hash is stored).
//! - OAuth client: `client_id` = `ss3c_<16 base62>`, `client_secret` = 40 base62 characters (~238 bits).
//! - OAuth access token: `ss3at_<43 base62>` (~256 bits, stored as SHA-256).

use std::fmt;

/// Every scope, with what it allows. The single source of truth (served at `GET /scopes`).
pub const SCOPES: &[(&str, &str)] = &[
    ("catalog:read", "Read products, variants and categories"),
    ("inventory:read", "Read stock levels"),
    ("inventory:write", "Change stock levels"),
    ("orders:read", "Read orders and fulfilments"),
    ("customers:read", "Read customer records"),
    (
        "webhooks:manage",
        "Manage webhook subscriptions and read the delivery log",
    ),
];

/// A known scope (`{resource}:{action}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(&'static str);

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; valid scopes are: {valid}", valid = SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "))]
pub struct UnknownScope(pub String);

impl Scope {
    /// Parse one scope.
    pub fn parse(raw: &str) -> Result<Self, UnknownScope> {
        SCOPES
            .iter()
            .find(|(s, _)| *s == raw)
            .map(|(s, _)| Scope(s))
            .ok_or_else(|| UnknownScope(raw.to_owned()))
    }

    /// The scope's name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Parse a list of scopes: non-empty, known, de-duplicated, sorted.
pub fn parse_scopes<S: AsRef<str>>(raw: &[S]) -> Result<Vec<Scope>, UnknownScope> {
    if raw.is_empty() {
        return Err(UnknownScope(String::new()));
    }
    let mut out: Vec<Scope> = raw
        .iter()
        .map(|s| Scope::parse(s.as_ref().trim()))
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// OAuth `scope` parameter (space-separated) → the granted scopes, which must be a subset of `allowed`.
/// Absent or empty → all of `allowed`. `Err` carries the OAuth error: the request asked for something not allowed.
pub fn requested_scopes(param: Option<&str>, allowed: &[String]) -> Result<Vec<String>, String> {
    let Some(param) = param.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(allowed.to_vec());
    };
    let mut granted = Vec::new();
    for s in param.split_whitespace() {
        if !allowed.iter().any(|a| a == s) {
            return Err(format!("scope {s:?} is not granted to this client"));
        }
        if !granted.iter().any(|g| g == s) {
            granted.push(s.to_owned());
        }
    }
    granted.sort();
    Ok(granted)
}

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "ss3_live_";
/// Prefix of OAuth client ids.
pub const CLIENT_ID_PREFIX: &str = "ss3c_";
/// Prefix of access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "ss3at_";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 string of `len` characters from uniformly random bytes (rejection sampling keeps it unbiased).
pub fn base62(random_bytes: impl IntoIterator<Item = u8>, len: usize) -> String {
    random_bytes
        .into_iter()
        .filter(|b| *b < 248) // 248 = 62 × 4: values at or above it would bias the modulo
        .take(len)
        .map(|b| BASE62[(b % 62) as usize] as char)
        .collect()
}

fn is_base62(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What a caller presented, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `ss3_live_<prefix>_<secret>`.
    ApiKey { prefix: &'a str, secret: &'a str },
    /// `ss3at_<token>`.
    AccessToken(&'a str),
    /// Anything else.
    Malformed,
}

/// Parse a presented credential (the header value without `Bearer `).
pub fn parse_presented(token: &str) -> Presented<'_> {
    let token = token.trim();
    if let Some(rest) = token.strip_prefix(API_KEY_PREFIX)
        && let Some((prefix, secret)) = rest.split_once('_')
        && is_base62(prefix, 12)
        && is_base62(secret, 32)
    {
        return Presented::ApiKey { prefix, secret };
    }
    if let Some(rest) = token.strip_prefix(ACCESS_TOKEN_PREFIX)
        && is_base62(rest, 43)
    {
        return Presented::AccessToken(token);
    }
    Presented::Malformed
}

/// Whether a client id has our format.
pub fn is_client_id(s: &str) -> bool {
    s.strip_prefix(CLIENT_ID_PREFIX)
        .is_some_and(|rest| is_base62(rest, 16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_scopes_are_refused_listing_the_valid_ones() {
        let err = parse_scopes(&["orders:read", "orders:write"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("orders:write") && err.contains("webhooks:manage"),
            "{err}"
        );
        assert!(parse_scopes::<&str>(&[]).is_err());
        let ok = parse_scopes(&["orders:read", "catalog:read", "orders:read"]).unwrap_or_default();
        assert_eq!(
            ok.iter().map(Scope::as_str).collect::<Vec<_>>(),
            ["catalog:read", "orders:read"]
        );
    }

    #[test]
    fn requested_scopes_must_be_a_subset() {
        let allowed = vec!["catalog:read".to_owned(), "orders:read".to_owned()];
        assert_eq!(requested_scopes(None, &allowed), Ok(allowed.clone()));
        assert_eq!(
            requested_scopes(Some("orders:read"), &allowed),
            Ok(vec!["orders:read".to_owned()])
        );
        assert!(requested_scopes(Some("orders:read customers:read"), &allowed).is_err());
    }

    #[test]
    fn presented_tokens_parse_by_shape() {
        let key = format!("ss3_live_{}_{}", "a".repeat(12), "B".repeat(32));
        assert_eq!(
            parse_presented(&key),
            Presented::ApiKey {
                prefix: &"a".repeat(12),
                secret: &"B".repeat(32)
            }
        );
        let at = format!("ss3at_{}", "x".repeat(43));
        assert_eq!(parse_presented(&at), Presented::AccessToken(&at));
        for bad in [
            "",
            "ss3_live_",
            "ss3_live_short_secret",
            "Bearer x",
            &format!("ss3_live_{}_{}!", "a".repeat(12), "B".repeat(31)),
        ] {
            assert_eq!(parse_presented(bad), Presented::Malformed, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn generated_keys_always_parse_back_and_fit_bcrypt(bytes in proptest::collection::vec(any::<u8>(), 200)) {
            let prefix = base62(bytes[..100].iter().copied(), 12);
            let secret = base62(bytes[100..].iter().copied(), 32);
            prop_assume!(prefix.len() == 12 && secret.len() == 32);
            let key = format!("{API_KEY_PREFIX}{prefix}_{secret}");
            prop_assert!(key.len() <= 72);
            prop_assert_eq!(parse_presented(&key), Presented::ApiKey { prefix: &prefix, secret: &secret });
        }
    }
}
