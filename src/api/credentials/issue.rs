//! New secrets: what a created or rotated credential is shown, exactly once.

use workflows::credentials::{API_KEY_PREFIX, CLIENT_ID_PREFIX};

use super::types::{Credential, CredentialType, IssuedCredential};
use crate::credentials::random_base62;

/// A new secret for a credential of `kind` (32 base62 characters for an API key, 40 for an OAuth client).
pub(super) fn new_secret(kind: CredentialType) -> String {
    random_base62(match kind {
        CredentialType::ApiKey => 32,
        CredentialType::OauthClient => 40,
    })
}

/// The public part of a new credential of `kind`: an API key's prefix, or an OAuth client id.
pub(super) fn new_client_id(kind: CredentialType) -> String {
    match kind {
        CredentialType::ApiKey => random_base62(12),
        CredentialType::OauthClient => format!("{CLIENT_ID_PREFIX}{}", random_base62(16)),
    }
}

/// What the caller is shown of a credential just issued with `secret`: the whole API key
/// (`ss3_live_<prefix>_<secret>`), or the OAuth client id and secret.
pub(super) fn shown(
    kind: CredentialType,
    credential: Credential,
    secret: String,
) -> IssuedCredential {
    match kind {
        CredentialType::ApiKey => IssuedCredential {
            api_key: Some(format!("{API_KEY_PREFIX}{}_{secret}", credential.client_id)),
            credential,
            client_id: None,
            client_secret: None,
        },
        CredentialType::OauthClient => IssuedCredential {
            client_id: Some(credential.client_id.clone()),
            client_secret: Some(secret),
            credential,
            api_key: None,
        },
    }
}
