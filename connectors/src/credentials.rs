//! A connector's credentials: the fields an adapter can need, as read from the secret store.

use std::collections::BTreeMap;

use crate::model::ConnectorError;

/// The credential fields a connector can need, each stored at `connector/{config_id}/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialField {
    /// Client id (Amazon, eBay) or service-account email (Google).
    ApiKey,
    /// Client secret (Amazon, eBay) or service-account private key (Google).
    ApiSecret,
    /// A long-lived OAuth refresh token.
    RefreshToken,
}

impl CredentialField {
    /// Every field, in path order.
    pub const ALL: [CredentialField; 3] = [Self::ApiKey, Self::ApiSecret, Self::RefreshToken];

    /// What an OAuth refresh-token grant needs: the app's client id and secret and the seller's refresh token.
    pub const OAUTH_REFRESH: &'static [CredentialField] = &Self::ALL;

    /// Last segment of its secret-store path.
    pub fn path(self) -> &'static str {
        match self {
            Self::ApiKey => "api-key",
            Self::ApiSecret => "api-secret",
            Self::RefreshToken => "refresh-token",
        }
    }
}

/// A config's credentials as read from the secret store (`Debug` names the fields set, never their values).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<CredentialField, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// A field, or a permanent error naming it.
    pub fn require(&self, field: CredentialField) -> Result<&str, ConnectorError> {
        self.0
            .get(&field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConnectorError::Credentials(format!("credential {} is not set", field.path()))
            })
    }

    /// A short hash naming these exact credentials (cached access tokens are keyed by it, so replaced credentials
    /// never reuse a token minted from the old ones).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update(k.path());
            h.update([0]);
            h.update(v);
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    }
}
