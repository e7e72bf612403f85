//! The connector configuration's life cycle: types on offer, create, list, get, update, activate, deactivate,
//! delete.

use std::time::Duration;

use ::connectors::Credentials;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use sqlx::PgConnection;
use workflows::StoreId;
use workflows::ids::ConnectorId;

use super::types::{
    Connector, ConnectorPage, ConnectorType, CreateConnector, UpdateConnector, to_connector,
};
use super::validate::{
    NewConnector, adapter, credentials_complete, credentials_missing, field_name, parse_create,
    parse_update,
};
use super::{load, not_found, secret_store_error};
use crate::api::auth::OperatorStoreAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::{AppState, Tag, next_page, page_limit};
use crate::connectors::store_credentials;
use crate::db::connectors::{self, ConfigRow, NewConfig, Patch};

#[derive(ApiResponse)]
pub enum Created {
    /// Created; `credentials.set` lists the credential fields stored with it.
    #[oai(status = 201)]
    Created(Json<Connector>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted, and its credentials erased; the sync log keeps its history.
    #[oai(status = 204)]
    NoContent,
}

/// The store's config `id`, locked for the rest of `tx` (`FOR UPDATE`), or 404.
async fn locked(
    tx: &mut PgConnection,
    store: &StoreId,
    id: ConnectorId,
) -> Result<ConfigRow, ApiError> {
    connectors::get(tx, store.as_str(), id, true)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))
}

/// The config `id` as `tx` now sees it (after its writes), or 404.
async fn reread(
    tx: &mut PgConnection,
    store: &StoreId,
    id: ConnectorId,
) -> Result<ConfigRow, ApiError> {
    connectors::get(tx, store.as_str(), id, false)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))
}

/// Make config `id` active and queue a poll now (a connector that does not poll gets none).
async fn activate_now(
    state: &AppState,
    tx: &mut PgConnection,
    store: &StoreId,
    id: ConnectorId,
) -> Result<(), ApiError> {
    let patch = Patch {
        is_active: Some(true),
        ..Patch::default()
    };
    connectors::update(tx, store.as_str(), id, &patch)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))?;
    connectors::schedule_poll(tx, id, state.connectors.pacing.clock.now(), Duration::ZERO)
        .await
        .map_err(ApiError::from)?;
    Ok(())
}

/// Store `credentials` for config `id` and record which fields are set. Called before the config's row commits,
/// so no worker ever sees an active config without its credentials.
pub(super) async fn store_and_mark(
    state: &AppState,
    tx: &mut PgConnection,
    id: ConnectorId,
    credentials: &Credentials,
) -> Result<(), ApiError> {
    store_credentials(state.secrets.as_ref(), id, credentials)
        .await
        .map_err(secret_store_error)?;
    let set: Vec<String> = credentials
        .0
        .keys()
        .map(|f| field_name(*f).to_owned())
        .collect();
    connectors::mark_credentials(tx, id, &set)
        .await
        .map_err(ApiError::from)
}

/// Insert the parsed config, with its credentials, active if asked; returns the row as committed.
async fn insert(
    state: &AppState,
    store: &StoreId,
    body: &CreateConnector,
    new: NewConnector,
) -> Result<ConfigRow, ApiError> {
    let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
    let config = NewConfig {
        store_id: store.as_str(),
        connector_type: new.adapter.connector_type(),
        display_name: &body.display_name,
        events: &new.events,
        settings: body.settings.as_value(),
        poll_interval_secs: new.interval,
    };
    let row = connectors::insert(&mut tx, &config)
        .await
        .map_err(ApiError::from)?;
    let id = row.config_id;
    if let Some(c) = &new.credentials {
        store_and_mark(state, &mut tx, id, c).await?;
    }
    if new.activate {
        activate_now(state, &mut tx, store, id).await?;
    }
    let row = reread(&mut tx, store, id).await?;
    tx.commit().await.map_err(ApiError::from)?;
    Ok(row)
}

/// Erase a deleted config's credentials, then clear its tombstone's `credentials_set`. Never inside the delete's
/// transaction: erased secrets cannot come back if that transaction then failed to commit.
async fn erase_credentials(state: &AppState, id: ConnectorId) -> Result<(), ApiError> {
    let empty = Credentials::default();
    if let Err(e) = store_credentials(state.secrets.as_ref(), id, &empty).await {
        tracing::error!(config_id = %id, error = %e, "connector deleted, but its credentials could not be erased yet; a repeated DELETE retries");
        return Err(ApiError::Unavailable(
            ProblemCode::SecretStoreUnavailable,
            format!(
                "the connector is deleted, but erasing its credentials failed ({e}); repeat the DELETE to retry"
            ),
        ));
    }
    connectors::credentials_erased(&state.pool, id)
        .await
        .map_err(ApiError::from)
}

/// Connector configurations.
pub struct ConfigsApi;

#[OpenApi(tag = "Tag::Connectors")]
impl ConfigsApi {
    /// Connector types this service offers.
    #[oai(path = "/connector-types", method = "get")]
    pub async fn types(
        &self,
        _auth: OperatorStoreAuth,
        state: Data<&AppState>,
    ) -> Result<Json<Vec<ConnectorType>>, Problems<{ STORE_CALLER }>> {
        let registry = &state.connectors.registry;
        Ok(Json(registry.all().map(ConnectorType::of).collect()))
    }

    /// Configure a connector for the store; credentials given here are stored and never shown again.
    #[oai(path = "/connectors", method = "post")]
    pub async fn create(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        body: Json<CreateConnector>,
    ) -> Result<Created, Problems<{ STORE_CALLER | JSON_BODY | CONFLICT }>> {
        let new = parse_create(&state, &body)?;
        let row = insert(&state, &auth.0.store_id, &body, new).await?;
        Ok(Created::Created(Json(to_connector(&state, row))))
    }

    /// The store's connectors.
    #[oai(path = "/connectors", method = "get")]
    pub async fn list(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        cursor: Query<Option<ConnectorId>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<ConnectorPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let store = auth.0.store_id.as_str();
        let rows = connectors::list(&state.pool, store, cursor.0, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let rows: Vec<Connector> = rows.into_iter().map(|r| to_connector(&state, r)).collect();
        let (items, next_cursor) = next_page(rows, limit, |c: &Connector| c.config_id.to_string());
        Ok(Json(ConnectorPage { items, next_cursor }))
    }

    /// One connector (credentials: only which are set).
    #[oai(path = "/connectors/:id", method = "get")]
    pub async fn get(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = load(&state, &auth.0.store_id, id.0).await?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Change name, events, settings or poll interval.
    #[oai(path = "/connectors/:id", method = "patch")]
    pub async fn update(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
        body: Json<UpdateConnector>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let (store, id) = (&auth.0.store_id, id.0);
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = locked(&mut tx, store, id).await?;
        let adapter = adapter(&state, &current.connector_type)?;
        let patch = parse_update(&state, adapter.as_ref(), &body)?;
        connectors::update(&mut tx, store.as_str(), id, &patch)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id))?;
        if let Some(Some(secs)) = patch.poll_interval_secs
            && current.is_active
        {
            // The new interval applies from now: the queued poll is superseded by one an interval away.
            let every = Duration::from_secs(secs as u64);
            connectors::schedule_poll(&mut tx, id, state.connectors.pacing.clock.now(), every)
                .await
                .map_err(ApiError::from)?;
        }
        let row = reread(&mut tx, store, id).await?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Start syncing (needs complete credentials); a polling connector polls at once.
    #[oai(path = "/connectors/:id/activate", method = "post")]
    pub async fn activate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let (store, id) = (&auth.0.store_id, id.0);
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = locked(&mut tx, store, id).await?;
        let adapter = adapter(&state, &current.connector_type)?;
        if !credentials_complete(Some(&adapter), &current.credentials_set) {
            return Err(credentials_missing().into());
        }
        if !current.is_active {
            activate_now(&state, &mut tx, store, id).await?;
        }
        let row = reread(&mut tx, store, id).await?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Stop syncing: waiting jobs are cancelled, no more polls; events are no longer fanned out to it.
    #[oai(path = "/connectors/:id/deactivate", method = "post")]
    pub async fn deactivate(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Json<Connector>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        let store = auth.0.store_id.as_str();
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let patch = Patch {
            is_active: Some(false),
            ..Patch::default()
        };
        let row = connectors::update(&mut tx, store, id.0, &patch)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Json(to_connector(&state, row)))
    }

    /// Delete: the config stops at once (waiting jobs are cancelled); its credentials are erased from the secret
    /// store after that commits. If the erasure fails (`503 secret_store_unavailable`), the config stays deleted
    /// and a repeated `DELETE` retries the erasure. The sync log keeps its history.
    #[oai(path = "/connectors/:id", method = "delete")]
    pub async fn delete(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Deleted, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let (store, id) = (auth.0.store_id.as_str(), id.0);
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        if connectors::delete(&mut tx, store, id)
            .await
            .map_err(ApiError::from)?
        {
            tx.commit().await.map_err(ApiError::from)?;
        } else {
            drop(tx);
            let pending = connectors::pending_erasure(&state.pool, store, id)
                .await
                .map_err(ApiError::from)?;
            if !pending {
                return Err(not_found(id).into());
            }
        }
        erase_credentials(&state, id).await?;
        Ok(Deleted::NoContent)
    }
}
