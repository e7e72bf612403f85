//! `/connectors`: per-store connector configs (credentials are write-only), their sync log, jobs and dead letters,
//! "poll now" and "test connection". Operators only: the platform's admin back-end calls these for a store.
//!
//! One module per concern: `configs` (the configuration's life cycle), `credentials` (write-only credentials and
//! the connection test), `jobs` (outbound jobs, re-trigger, poll now), `log` (the sync log); `types` holds the
//! configuration's DTOs and `validate` the request rules, each behind one function.

mod configs;
mod credentials;
mod jobs;
mod log;
mod types;
mod validate;

pub use configs::ConfigsApi;
pub use credentials::ConnectorCredentialsApi;
pub use jobs::{ConnectorJob, ConnectorJobPage, JobsApi, PollQueued};
pub use log::{SyncLogApi, SyncRun, SyncRunPage};
pub use types::{
    ConnectionTest, Connector, ConnectorPage, ConnectorType, CreateConnector, CredentialsInput,
    CredentialsState, UpdateConnector,
};

use workflows::StoreId;
use workflows::ids::ConnectorId;

use super::AppState;
use super::code::ProblemCode;
use super::problem::ApiError;
use crate::db::connectors::{self, ConfigRow};

/// Every connector route, as one poem-openapi service (a tuple of the per-concern services).
pub type ConnectorsApi = (ConfigsApi, ConnectorCredentialsApi, JobsApi, SyncLogApi);

/// The connector routes, for [`super::openapi`].
pub fn api() -> ConnectorsApi {
    (ConfigsApi, ConnectorCredentialsApi, JobsApi, SyncLogApi)
}

/// 404 for a connector id that is not one of the caller's store (another store's id looks the same).
fn not_found(id: ConnectorId) -> ApiError {
    ApiError::NotFound(
        ProblemCode::ConnectorNotFound,
        format!("connector {id} does not exist in this store"),
    )
}

/// 503 for a secret store that refused to store or erase credentials.
fn secret_store_error(e: crate::secrets::SecretStoreError) -> ApiError {
    ApiError::Unavailable(ProblemCode::SecretStoreUnavailable, e.to_string())
}

/// The store's live config `id`, or 404.
async fn load(
    state: &AppState,
    store_id: &StoreId,
    id: ConnectorId,
) -> Result<ConfigRow, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
    connectors::get(&mut conn, store_id.as_str(), id, false)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(id))
}
