//! Who is calling. Handlers take an extractor in their signature, so none can forget authorisation.
//!
//! Today: an operator token from config, with the store chosen by the `X-SS3-Store-Id` header.
//! The credentials work swaps `check_store` for API-key / OAuth validation; handlers do not change.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use subtle::ConstantTimeEq;
use workflows::StoreId;

use super::AppState;
use super::problem::ApiError;

/// Header naming the store an operator acts on.
pub const STORE_HEADER: &str = "x-ss3-store-id";

/// The caller's store and scopes.
#[derive(Debug, Clone)]
pub struct StoreScope {
    /// Every query of the request is filtered by this store.
    pub store_id: StoreId,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl StoreScope {
    /// Fail with 403 unless `scope` was granted.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope))
        }
    }
}

fn state(req: &Request) -> Result<&AppState, ApiError> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState missing")))
}

fn is_operator(state: &AppState, bearer: &Bearer) -> bool {
    let expected = state.admin_token.expose().as_bytes();
    !expected.is_empty() && bool::from(bearer.token.as_bytes().ct_eq(expected))
}

/// A store-scoped caller (`Authorization: Bearer <token>`, `X-SS3-Store-Id: <store>`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_store")]
pub struct StoreAuth(pub StoreScope);

async fn check_store(req: &Request, bearer: Bearer) -> poem::Result<StoreScope> {
    let state = state(req)?;
    if !is_operator(state, &bearer) {
        return Err(ApiError::Unauthorized.into());
    }
    let raw = req.header(STORE_HEADER).ok_or_else(|| {
        ApiError::Invalid(
            "store_id_required",
            format!("operators name the store in the {STORE_HEADER} header"),
        )
    })?;
    let store_id =
        StoreId::parse(raw).map_err(|e| ApiError::Invalid("invalid_store_id", e.to_string()))?;
    Ok(StoreScope {
        store_id,
        scopes: ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// A platform operator (`Authorization: Bearer <admin token>`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_operator")]
pub struct OperatorAuth(pub ());

async fn check_operator(req: &Request, bearer: Bearer) -> poem::Result<()> {
    if is_operator(state(req)?, &bearer) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized.into())
    }
}

/// Scopes an operator holds in any store.
const ALL_SCOPES: &[&str] = &[
    "catalog:read",
    "inventory:read",
    "inventory:write",
    "orders:read",
    "customers:read",
    "webhooks:manage",
];
