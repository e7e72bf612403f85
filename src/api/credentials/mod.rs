//! `/credentials`: API keys and OAuth clients (operators, per store); `gateway` adds `GET /credentials/validate`
//! (the gateway) and `GET /scopes`.

mod gateway;
mod issue;
mod types;

pub use gateway::GatewayApi;
pub use types::{
    CreateCredential, Credential, CredentialPage, CredentialType, IssuedCredential, Rotate,
    ScopeInfo, UpdateCredential, Validation,
};

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use workflows::StoreId;
use workflows::credentials::parse_scopes;
use workflows::ids::CredentialId;

use super::auth::OperatorStoreAuth;
use super::code::ProblemCode;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::Name;
use super::{AppState, Tag, next_page, page_limit};
use crate::db::credentials::{self as repo, NewCredential, Patch};

/// Every credential route: store management (operators) and the gateway's.
pub type CredentialsApi = (ManageApi, GatewayApi);

/// The credential routes, for [`super::openapi`].
pub fn api() -> CredentialsApi {
    (ManageApi, GatewayApi)
}

#[derive(ApiResponse)]
pub enum Issued {
    /// Created: the secret is in this response only.
    #[oai(status = 201)]
    Created(Json<IssuedCredential>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted with its access tokens; validation fails at once in every process.
    #[oai(status = 204)]
    NoContent,
}

/// 404 for a credential id that is not one of the caller's store (another store's id looks the same).
fn not_found(id: CredentialId) -> ApiError {
    ApiError::NotFound(
        ProblemCode::CredentialNotFound,
        format!("credential {id} does not exist in this store"),
    )
}

/// The scopes to store: a non-empty list of known scopes.
fn valid_scopes(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidScope,
            "scopes must not be empty".into(),
        ));
    }
    let scopes = parse_scopes(raw)
        .map_err(|e| ApiError::Invalid(ProblemCode::InvalidScope, e.to_string()))?;
    Ok(scopes.iter().map(|s| s.as_str().to_owned()).collect())
}

/// An expiry to store: absent, or in the future.
fn future(at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match at {
        Some(t) if t <= Utc::now() => Err(ApiError::Invalid(
            ProblemCode::InvalidExpiry,
            "expiresAt must be in the future".into(),
        )),
        other => Ok(other),
    }
}

/// The grace period of a rotation: 0 (the old secret stops at once) to 86400 seconds.
fn grace(seconds: Option<u32>) -> Result<u32, ApiError> {
    match seconds.unwrap_or(0) {
        s if s > 86_400 => Err(ApiError::Invalid(
            ProblemCode::InvalidGrace,
            "graceSeconds must be at most 86400".into(),
        )),
        s => Ok(s),
    }
}

/// Tell every process's validation cache that credential `id` changed.
async fn changed(state: &AppState, id: CredentialId) -> Result<(), ApiError> {
    state
        .validator
        .changed(id)
        .await
        .map_err(ApiError::Internal)
}

/// Apply `patch` to the store's credential `id`, then evict it from the validation caches.
async fn change(
    state: &AppState,
    store: &StoreId,
    id: CredentialId,
    patch: &Patch,
) -> Result<Json<Credential>, ApiError> {
    let row = repo::update(&state.pool, store, id, patch)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))?;
    changed(state, id).await?;
    Ok(Json(row.into()))
}

/// Deactivate (`false`) or reactivate (`true`) the store's credential `id`.
async fn set_active(
    state: &AppState,
    store: &StoreId,
    id: CredentialId,
    is_active: bool,
) -> Result<Json<Credential>, ApiError> {
    let patch = Patch {
        is_active: Some(is_active),
        ..Patch::default()
    };
    change(state, store, id, &patch).await
}

/// Give the store's credential `id` a new secret; the old one works until `grace_until`, or stops at once.
async fn rotate(
    state: &AppState,
    store: &StoreId,
    id: CredentialId,
    grace_seconds: u32,
) -> Result<IssuedCredential, ApiError> {
    let current = repo::get(&state.pool, store, id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))?;
    let kind = CredentialType::of_stored(&current.kind);
    let secret = issue::new_secret(kind);
    let hashed = state
        .validator
        .hash_secret(secret.clone())
        .await
        .map_err(ApiError::Internal)?;
    let grace_until = (grace_seconds > 0)
        .then(|| Utc::now() + chrono::Duration::seconds(i64::from(grace_seconds)));
    let row = repo::rotate(&state.pool, store, id, &hashed, grace_until)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))?;
    changed(state, id).await?;
    Ok(issue::shown(kind, row.into(), secret))
}

/// Store management of API keys and OAuth clients.
pub struct ManageApi;

#[OpenApi(tag = "Tag::Credentials")]
impl ManageApi {
    /// Issue an API key or OAuth client for the store; the secret is in this response only.
    #[oai(path = "/credentials", method = "post")]
    pub async fn create(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        body: Json<CreateCredential>,
        #[oai(name = "X-SS3-Actor")] actor: Header<Option<String>>,
    ) -> Result<Issued, Problems<{ STORE_CALLER | JSON_BODY | CONFLICT }>> {
        let scopes = valid_scopes(&body.scopes)?;
        let expires_at = future(body.expires_at)?;
        let (client_id, secret) = (
            issue::new_client_id(body.kind),
            issue::new_secret(body.kind),
        );
        let hashed = state
            .validator
            .hash_secret(secret.clone())
            .await
            .map_err(ApiError::Internal)?;
        let created_by = actor.0.unwrap_or_else(|| "operator".into());
        let new = NewCredential {
            store_id: &auth.0.store_id,
            name: &body.name,
            kind: body.kind.as_str(),
            client_id: &client_id,
            hashed_secret: &hashed,
            scopes: &scopes,
            expires_at,
            created_by: &created_by,
        };
        let row = repo::insert(&state.pool, &new)
            .await
            .map_err(ApiError::from)?;
        let issued = issue::shown(body.kind, row.into(), secret);
        Ok(Issued::Created(Json(issued)))
    }

    /// The store's credentials (never a secret).
    #[oai(path = "/credentials", method = "get")]
    pub async fn list(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        cursor: Query<Option<CredentialId>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<CredentialPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let rows = repo::list(&state.pool, &auth.0.store_id, cursor.0, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (items, next_cursor) =
            next_page(rows, limit, |x: &Credential| x.credential_id.to_string());
        Ok(Json(CredentialPage { items, next_cursor }))
    }

    /// One credential.
    #[oai(path = "/credentials/:id", method = "get")]
    pub async fn get(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = repo::get(&state.pool, &auth.0.store_id, id.0)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(row.ok_or_else(|| not_found(id.0))?.into()))
    }

    /// Change name, scopes or expiry.
    #[oai(path = "/credentials/:id", method = "patch")]
    pub async fn update(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
        body: Json<UpdateCredential>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND | CONFLICT }>>
    {
        let patch = Patch {
            name: body.name.clone().map(Name::into_inner),
            scopes: body.scopes.as_deref().map(valid_scopes).transpose()?,
            expires_at: future(body.expires_at)?.map(Some),
            is_active: None,
        };
        Ok(change(&state, &auth.0.store_id, id.0, &patch).await?)
    }

    /// Deactivate: validation fails at once; the configuration is kept.
    #[oai(path = "/credentials/:id/deactivate", method = "post")]
    pub async fn deactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        Ok(set_active(&state, &auth.0.store_id, id.0, false).await?)
    }

    /// Reactivate a deactivated credential: validation accepts it again (unless it expired).
    #[oai(path = "/credentials/:id/reactivate", method = "post")]
    pub async fn reactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
    ) -> Result<Json<Credential>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        Ok(set_active(&state, &auth.0.store_id, id.0, true).await?)
    }

    /// Issue a new secret. The old one stops working at once, or after `graceSeconds`.
    #[oai(path = "/credentials/:id/rotate", method = "post")]
    pub async fn rotate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
        body: Json<Rotate>,
    ) -> Result<Json<IssuedCredential>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let grace = grace(body.grace_seconds)?;
        Ok(Json(rotate(&state, &auth.0.store_id, id.0, grace).await?))
    }

    /// Delete, with its access tokens.
    #[oai(path = "/credentials/:id", method = "delete")]
    pub async fn delete(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<CredentialId>,
    ) -> Result<Deleted, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        if !repo::delete(&state.pool, &auth.0.store_id, id.0)
            .await
            .map_err(ApiError::from)?
        {
            return Err(not_found(id.0).into());
        }
        changed(&state, id.0).await?;
        Ok(Deleted::NoContent)
    }
}
