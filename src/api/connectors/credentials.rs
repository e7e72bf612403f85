//! A connector's credentials: set (write-only) and tried ("test connection").

use ::connectors::{ConnectorConfig, ConnectorContext};
use chrono::Utc;
use jobs::connector::handler::NoContext;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use workflows::ids::ConnectorId;

use super::configs::store_and_mark;
use super::types::{ConnectionTest, CredentialsInput};
use super::validate::{adapter, to_credentials};
use super::{load, not_found};
use crate::api::auth::OperatorStoreAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::{AppState, Tag};
use crate::db::connectors;

#[derive(ApiResponse)]
pub enum NoContent {
    /// The credentials are stored; `credentials.set` of the connector lists the fields.
    #[oai(status = 204)]
    NoContent,
}

/// Connector credentials and the connection test.
pub struct ConnectorCredentialsApi;

#[OpenApi(tag = "Tag::Connectors")]
impl ConnectorCredentialsApi {
    /// Set or replace the credentials (write-only: no endpoint returns them).
    #[oai(path = "/connectors/:id/credentials", method = "put")]
    pub async fn set_credentials(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
        body: Json<CredentialsInput>,
    ) -> Result<NoContent, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let current = connectors::get(&mut tx, auth.0.store_id.as_str(), id.0, true)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found(id.0))?;
        let adapter = adapter(&state, &current.connector_type)?;
        let credentials = to_credentials(adapter.as_ref(), &body)?;
        store_and_mark(&state, &mut tx, id.0, &credentials).await?;
        tx.commit().await.map_err(ApiError::from)?;
        Ok(NoContent::NoContent)
    }

    /// Check credentials and settings with one authenticated call to the marketplace API.
    #[oai(path = "/connectors/:id/test", method = "post")]
    pub async fn test(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Json<ConnectionTest>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND }>> {
        let row = load(&state, &auth.0.store_id, id.0).await?;
        let config = ConnectorConfig {
            config_id: row.config_id,
            store_id: row.store_id,
            connector_type: row.connector_type,
            settings: row.settings,
        };
        let (adapter, credentials, channel) = match state.connectors.prepare(&config).await {
            Ok(parts) => parts,
            Err(NoContext::SecretsUnavailable(why)) => {
                return Err(ApiError::Unavailable(ProblemCode::SecretStoreUnavailable, why).into());
            }
            Err(NoContext::Broken(e)) => {
                return Ok(Json(ConnectionTest {
                    ok: false,
                    detail: e.to_string(),
                    http_status: None,
                }));
            }
        };
        let ctx = ConnectorContext {
            config: &config,
            credentials: &credentials,
            channel: &channel,
            now: Utc::now(),
        };
        Ok(Json(match adapter.test_connection(&ctx).await {
            Ok(detail) => ConnectionTest {
                ok: true,
                detail,
                http_status: None,
            },
            Err(e) => ConnectionTest {
                ok: false,
                http_status: e.as_failure().status,
                detail: e.to_string(),
            },
        }))
    }
}
