//! `/credentials`: API keys and OAuth clients (operators, per store), `GET /credentials/validate` (the gateway),
//! `GET /scopes`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;
use workflows::credentials::{API_KEY_PREFIX, CLIENT_ID_PREFIX, SCOPES, Scope, parse_scopes};

use super::auth::{OperatorStoreAuth, gateway_allowed};
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::Name;
use super::{AppState, Tag, next_page, page_limit};
use crate::credentials::random_base62;
use crate::db::credentials::{self as repo, CredentialRow, NewCredential, Patch};

/// Kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialType {
    /// A single token `ss3_live_<prefix>_<secret>`.
    ApiKey,
    /// OAuth 2.0 client credentials (`client_id` + `client_secret`).
    OauthClient,
}

impl CredentialType {
    fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "API_KEY",
            Self::OauthClient => "OAUTH_CLIENT",
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
    /// Id.
    pub credential_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Name.
    pub name: String,
    /// API_KEY or OAUTH_CLIENT.
    #[oai(rename = "type")]
    pub kind: String,
    /// The public part: an API key's prefix, or the OAuth client id.
    pub client_id: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Active.
    pub is_active: bool,
    /// Last use, to within credentials.last_used_precision_secs (+ the flush interval).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creator.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// The secret, shown exactly once (at creation or rotation).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssuedCredential {
    /// The credential.
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
    /// Items.
    pub items: Vec<Credential>,
    /// Next page.
    pub next_cursor: Option<String>,
}

/// Rotation request.
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
    /// Its store.
    #[oai(skip_serializing_if_is_none)]
    pub store_id: Option<String>,
    /// Its scopes.
    #[oai(skip_serializing_if_is_none)]
    pub scopes: Option<Vec<String>>,
    /// The credential (for an access token: its client).
    #[oai(skip_serializing_if_is_none)]
    pub credential_id: Option<Uuid>,
}

/// One scope.
#[derive(Debug, Object)]
pub struct ScopeInfo {
    /// `{resource}:{action}`.
    pub scope: String,
    /// What it allows.
    pub description: String,
}

#[derive(ApiResponse)]
enum Issued {
    /// Created: the secret is in this response only.
    #[oai(status = 201)]
    Created(Json<IssuedCredential>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
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

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(
        "credential_not_found",
        format!("credential {id} does not exist in this store"),
    )
}

fn valid_scopes(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::Invalid(
            "invalid_scope",
            "scopes must not be empty".into(),
        ));
    }
    let scopes =
        parse_scopes(raw).map_err(|e| ApiError::Invalid("invalid_scope", e.to_string()))?;
    Ok(scopes.iter().map(|s| s.as_str().to_owned()).collect())
}

fn future(at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match at {
        Some(t) if t <= Utc::now() => Err(ApiError::Invalid(
            "invalid_expiry",
            "expiresAt must be in the future".into(),
        )),
        other => Ok(other),
    }
}

/// The public part and the secret of a new credential, and what the caller is shown.
fn new_secret(
    kind: CredentialType,
) -> (
    String,
    String,
    Box<dyn Fn(Credential) -> IssuedCredential + Send>,
) {
    match kind {
        CredentialType::ApiKey => {
            let (prefix, secret) = (random_base62(12), random_base62(32));
            let key = format!("{API_KEY_PREFIX}{prefix}_{secret}");
            (
                prefix,
                secret,
                Box::new(move |credential| IssuedCredential {
                    credential,
                    api_key: Some(key.clone()),
                    client_id: None,
                    client_secret: None,
                }),
            )
        }
        CredentialType::OauthClient => {
            let (id, secret) = (
                format!("{CLIENT_ID_PREFIX}{}", random_base62(16)),
                random_base62(40),
            );
            let (shown_id, shown_secret) = (id.clone(), secret.clone());
            (
                id,
                secret,
                Box::new(move |credential| IssuedCredential {
                    credential,
                    api_key: None,
                    client_id: Some(shown_id.clone()),
                    client_secret: Some(shown_secret.clone()),
                }),
            )
        }
    }
}

fn presented<'a>(
    authorization: &'a Option<String>,
    api_key: &'a Option<String>,
) -> Option<&'a str> {
    api_key.as_deref().or_else(|| {
        authorization.as_deref().and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
    })
}

/// The credentials resource.
pub struct CredentialsApi;

#[OpenApi(tag = "Tag::Credentials")]
impl CredentialsApi {
    /// Issue an API key or OAuth client for the store; the secret is in this response only.
    #[oai(path = "/credentials", method = "post")]
    async fn create(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        body: Json<CreateCredential>,
        #[oai(name = "X-SS3-Actor")] actor: Header<Option<String>>,
    ) -> Result<Issued, Problems<{ STORE_CALLER | JSON_BODY | CONFLICT }>> {
        let scopes = valid_scopes(&body.scopes)?;
        let expires_at = future(body.expires_at)?;
        let (client_id, secret, shown) = new_secret(body.kind);
        let hashed = state
            .validator
            .hash_secret(secret)
            .await
            .map_err(ApiError::Internal)?;
        let created_by = actor.0.unwrap_or_else(|| "operator".into());
        let row = repo::insert(
            &state.pool,
            &NewCredential {
                store_id: auth.0.store_id.as_str(),
                name: &body.name,
                kind: body.kind.as_str(),
                client_id: &client_id,
                hashed_secret: &hashed,
                scopes: &scopes,
                expires_at,
                created_by: &created_by,
            },
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Issued::Created(Json(shown(row.into()))))
    }

    /// The store's credentials (never a secret).
    #[oai(path = "/credentials", method = "get")]
    async fn list(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        cursor: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<CredentialPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let rows = repo::list(&state.pool, auth.0.store_id.as_str(), cursor.0, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (items, next_cursor) =
            next_page(rows, limit, |x: &Credential| x.credential_id.to_string());
        Ok(Json(CredentialPage { items, next_cursor }))
    }

    /// Validate a credential for the API gateway: `Authorization: Bearer <API key or access token>` or `X-API-Key`.
    /// 200 with `{valid: false}` for anything unusable, without saying why. Under overload (too many uncached
    /// keys to check, or no database connection free) 503 `overloaded` with `Retry-After`: the answer is unknown,
    /// so retry or fail open/closed per the gateway's policy. A cached valid key is answered without waiting.
    #[oai(path = "/credentials/validate", method = "get")]
    async fn validate(
        &self,
        state: Data<&AppState>,
        #[oai(name = "Authorization")] authorization: Header<Option<String>>,
        #[oai(name = "X-API-Key")] api_key: Header<Option<String>>,
        #[oai(name = "X-Gateway-Token")] gateway: Header<Option<String>>,
    ) -> Result<Json<Validation>, Problems<{ BAD_REQUEST | UNAUTHORIZED | UNAVAILABLE }>> {
        if !gateway_allowed(&state, gateway.0.as_deref()) {
            return Err(ApiError::Unauthorized.into());
        }
        let grant = match presented(&authorization.0, &api_key.0) {
            Some(token) => state
                .validator
                .validate(token)
                .await
                .map_err(ApiError::Internal)?,
            None => None,
        };
        state.metrics.record_validation(grant.is_some());
        Ok(Json(match grant {
            Some(g) => Validation {
                valid: true,
                store_id: Some(g.store_id),
                scopes: Some(g.scopes),
                credential_id: Some(g.credential_id),
            },
            None => Validation {
                valid: false,
                store_id: None,
                scopes: None,
                credential_id: None,
            },
        }))
    }

    /// Every scope, with what it allows.
    #[oai(path = "/scopes", method = "get")]
    async fn scopes(&self) -> Json<Vec<ScopeInfo>> {
        Json(
            SCOPES
                .iter()
                .map(|(s, d)| ScopeInfo {
                    scope: Scope::parse(s)
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    description: (*d).to_owned(),
                })
                .collect(),
        )
    }

    /// One credential.
    #[oai(path = "/credentials/:id", method = "get")]
    async fn get(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = repo::get(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(row.ok_or_else(|| not_found(id.0))?.into()))
    }

    /// Change name, scopes or expiry.
    #[oai(path = "/credentials/:id", method = "patch")]
    async fn update(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateCredential>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND | CONFLICT }>>
    {
        let patch = Patch {
            name: body.name.clone().map(Name::into_inner),
            scopes: body.scopes.as_deref().map(valid_scopes).transpose()?,
            expires_at: future(body.expires_at)?.map(Some),
            is_active: None,
        };
        Ok(change(&state, auth.0.store_id.as_str(), id.0, &patch).await?)
    }

    /// Deactivate: validation fails at once; the configuration is kept.
    #[oai(path = "/credentials/:id/deactivate", method = "post")]
    async fn deactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        change(
            &state,
            auth.0.store_id.as_str(),
            id.0,
            &Patch {
                is_active: Some(false),
                ..Patch::default()
            },
        )
        .await
        .map_err(Into::into)
    }

    /// Reactivate.
    #[oai(path = "/credentials/:id/reactivate", method = "post")]
    async fn reactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        change(
            &state,
            auth.0.store_id.as_str(),
            id.0,
            &Patch {
                is_active: Some(true),
                ..Patch::default()
            },
        )
        .await
        .map_err(Into::into)
    }

    /// Issue a new secret. The old one stops working at once, or after `graceSeconds`.
    #[oai(path = "/credentials/:id/rotate", method = "post")]
    async fn rotate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<Rotate>,
    ) -> Result<Json<IssuedCredential>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let store = auth.0.store_id.as_str();
        let current = repo::get(&state.pool, store, id.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        let grace = body.grace_seconds.unwrap_or(0);
        if grace > 86_400 {
            return Err(ApiError::Invalid(
                "invalid_grace",
                "graceSeconds must be at most 86400".into(),
            )
            .into());
        }
        let secret = random_base62(if current.kind == "API_KEY" { 32 } else { 40 });
        let hashed = state
            .validator
            .hash_secret(secret.clone())
            .await
            .map_err(ApiError::Internal)?;
        let grace_until =
            (grace > 0).then(|| Utc::now() + chrono::Duration::seconds(i64::from(grace)));
        let row = repo::rotate(&state.pool, store, id.0, &hashed, grace_until)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        state
            .validator
            .changed(id.0)
            .await
            .map_err(ApiError::Internal)?;
        let issued = if row.kind == "API_KEY" {
            let key = format!("{API_KEY_PREFIX}{}_{secret}", row.client_id);
            IssuedCredential {
                credential: row.into(),
                api_key: Some(key),
                client_id: None,
                client_secret: None,
            }
        } else {
            let client_id = row.client_id.clone();
            IssuedCredential {
                credential: row.into(),
                api_key: None,
                client_id: Some(client_id),
                client_secret: Some(secret),
            }
        };
        Ok(Json(issued))
    }

    /// Delete, with its access tokens.
    #[oai(path = "/credentials/:id", method = "delete")]
    async fn delete(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Deleted, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        if !repo::delete(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?
        {
            return Err(not_found(id.0).into());
        }
        state
            .validator
            .changed(id.0)
            .await
            .map_err(ApiError::Internal)?;
        Ok(Deleted::NoContent)
    }
}

async fn change(
    state: &AppState,
    store: &str,
    id: Uuid,
    patch: &Patch,
) -> Result<Json<Credential>, ApiError> {
    let row = repo::update(&state.pool, store, id, patch)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))?;
    state
        .validator
        .changed(id)
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(row.into()))
}
