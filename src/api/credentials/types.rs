//! The DTOs of API keys and OAuth clients: what is created, changed, issued and shown.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use workflows::ids::CredentialId;

use crate::api::types::Name;
use crate::db::credentials::CredentialRow;

/// How a credential is presented: one API key, or an OAuth client that exchanges its id and secret for tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialType {
    /// A single token `ss3_live_<prefix>_<secret>`.
    ApiKey,
    /// OAuth 2.0 client credentials (`client_id` + `client_secret`).
    OauthClient,
}

impl CredentialType {
    /// The stored spelling (`type` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "API_KEY",
            Self::OauthClient => "OAUTH_CLIENT",
        }
    }

    /// The kind a stored `type` names (anything but `API_KEY` is an OAuth client, as the column's CHECK allows).
    pub fn of_stored(kind: &str) -> Self {
        if kind == Self::ApiKey.as_str() {
            Self::ApiKey
        } else {
            Self::OauthClient
        }
    }
}

/// A new credential.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateCredential {
    /// Unique per store, 1–200 characters, no control characters; stored trimmed.
    pub name: Name,
    /// API_KEY or OAUTH_CLIENT.
    #[oai(rename = "type")]
    pub kind: CredentialType,
    /// Non-empty; see `GET /scopes`.
    pub scopes: Vec<String>,
    /// Optional; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes; absent fields are kept.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateCredential {
    /// New name (1–200 characters, no control characters; stored trimmed).
    pub name: Option<Name>,
    /// New scopes (applies at once, cached validations included).
    pub scopes: Option<Vec<String>>,
    /// New expiry (in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A credential (never its secret or hash).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Credential {
    /// The credential's id (`{id}` of its routes).
    pub credential_id: CredentialId,
    /// The store it acts for.
    pub store_id: String,
    /// The display name, unique per store.
    pub name: String,
    /// API_KEY or OAUTH_CLIENT.
    #[oai(rename = "type")]
    pub kind: String,
    /// The public part: an API key's prefix, or the OAuth client id.
    pub client_id: String,
    /// Granted scopes (`{resource}:{action}`, see `GET /scopes`).
    pub scopes: Vec<String>,
    /// Whether validation accepts it (deactivate and reactivate switch it).
    pub is_active: bool,
    /// Last use, to within credentials.last_used_precision_secs (+ the flush interval).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops being valid (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who created it (`X-SS3-Actor` of the create request, else `operator`).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (rotation included).
    pub updated_at: DateTime<Utc>,
}

/// The secret, shown exactly once (at creation or rotation).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssuedCredential {
    /// The credential as stored (without its secret).
    pub credential: Credential,
    /// For API keys: the whole key.
    pub api_key: Option<String>,
    /// For OAuth clients: the client id.
    pub client_id: Option<String>,
    /// For OAuth clients: the client secret.
    pub client_secret: Option<String>,
}

/// A page of credentials.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CredentialPage {
    /// Credentials, oldest first.
    pub items: Vec<Credential>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A rotation request: how long the old secret keeps working.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Rotate {
    /// Seconds the old secret keeps working (0, the default: it stops at once; at most 86400).
    pub grace_seconds: Option<u32>,
}

/// The gateway's answer: `valid: false` says nothing about why.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Validation {
    /// Whether the credential may be used now.
    pub valid: bool,
    /// The store it acts for.
    #[oai(skip_serializing_if_is_none)]
    pub store_id: Option<String>,
    /// Its scopes (for an access token: the token's).
    #[oai(skip_serializing_if_is_none)]
    pub scopes: Option<Vec<String>>,
    /// The credential (for an access token: its client).
    #[oai(skip_serializing_if_is_none)]
    pub credential_id: Option<CredentialId>,
}

/// A scope a credential can be granted.
#[derive(Debug, Object)]
pub struct ScopeInfo {
    /// `{resource}:{action}`.
    pub scope: String,
    /// What it allows.
    pub description: String,
}

impl From<CredentialRow> for Credential {
    fn from(r: CredentialRow) -> Self {
        Self {
            credential_id: r.credential_id,
            store_id: r.store_id,
            name: r.name,
            kind: r.kind,
            client_id: r.client_id,
            scopes: r.scopes,
            is_active: r.is_active,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
