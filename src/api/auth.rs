//! Who is calling. Handlers take one of the extractors below in their signature, and the extractor checks the
//! credential, the store and the scope or operator requirement before the handler runs (and before the body is
//! read), so no handler checks a scope or operator status itself, and none can forget to:
//! - [`WebhooksAuth`]: a store-scoped caller holding `webhooks:manage`;
//! - [`OperatorStoreAuth`]: a platform operator acting on the store named by `X-SS3-Store-Id`;
//! - [`OperatorAuth`]: a platform operator, for routes not about one store;
//! - [`CallerAuth`]: any caller this service issued a credential to, or an operator, for reference data that
//!   belongs to no store (the event catalog).
//!
//! `Authorization: Bearer <token>` where the token is either
//! - an API key or OAuth access token issued by this service: the store and scopes are the credential's, or
//! - the operator token from config (platform operators): the store is named by `X-SS3-Store-Id`, all scopes.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use subtle::ConstantTimeEq;
use workflows::StoreId;
use workflows::credentials::SCOPES;

use super::AppState;
use super::code::ProblemCode;
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
    /// A platform operator (not a store's credential).
    pub operator: bool,
}

impl StoreScope {
    /// Fail with 403 unless `scope` was granted.
    fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope))
        }
    }

    /// Fail with 403 unless the caller is a platform operator.
    fn require_operator(&self) -> Result<(), ApiError> {
        if self.operator {
            Ok(())
        } else {
            Err(ApiError::OperatorOnly)
        }
    }
}

fn state(req: &Request) -> Result<&AppState, ApiError> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState missing")))
}

pub(crate) fn is_operator(state: &AppState, token: &str) -> bool {
    let expected = state.admin_token.expose().as_bytes();
    !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected))
}

// The schemes below differ only in what they require, and are checked while poem-openapi extracts the
// handler's arguments, before the body is read: a caller lacking a scope gets 403 even for an invalid body.
// Both store-scoped ones appear in the OpenAPI document as the one `StoreAuth` bearer scheme.

/// A store-scoped caller: an API key or access token of the store, or the operator token with `X-SS3-Store-Id`.
// Holding `webhooks:manage` (403 `missing_scope` otherwise).
#[derive(SecurityScheme)]
#[oai(rename = "StoreAuth", ty = "bearer", checker = "check_webhooks")]
pub struct WebhooksAuth(pub StoreScope);

/// A store-scoped caller: an API key or access token of the store, or the operator token with `X-SS3-Store-Id`.
// A platform operator acting on a store (403 `operator_only` for a store's own credential).
#[derive(SecurityScheme)]
#[oai(
    rename = "StoreAuth",
    ty = "bearer",
    checker = "check_operator_for_store"
)]
pub struct OperatorStoreAuth(pub StoreScope);

async fn check_webhooks(req: &Request, bearer: Bearer) -> poem::Result<StoreScope> {
    let scope = check_store(req, bearer).await?;
    scope.require(crate::api::subscriptions::SCOPE)?;
    Ok(scope)
}

async fn check_operator_for_store(req: &Request, bearer: Bearer) -> poem::Result<StoreScope> {
    let scope = check_store(req, bearer).await?;
    scope.require_operator()?;
    Ok(scope)
}

async fn check_store(req: &Request, bearer: Bearer) -> poem::Result<StoreScope> {
    let state = state(req)?;
    // A declared header is parsed whenever it is sent, even by a store credential (which then ignores it).
    let named = req
        .header(STORE_HEADER)
        .map(|raw| {
            StoreId::parse(raw)
                .map_err(|e| ApiError::Invalid(ProblemCode::InvalidStoreId, e.to_string()))
        })
        .transpose()?;
    if is_operator(state, &bearer.token) {
        let store_id = named.ok_or_else(|| {
            ApiError::Invalid(
                ProblemCode::StoreIdRequired,
                format!("operators name the store in the {STORE_HEADER} header"),
            )
        })?;
        let scopes = SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect();
        return Ok(StoreScope {
            store_id,
            scopes,
            operator: true,
        });
    }
    let grant = state
        .validator
        .validate(&bearer.token)
        .await
        .map_err(ApiError::Internal)?
        .ok_or(ApiError::Unauthorized)?;
    let store_id = StoreId::parse(&grant.store_id).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(StoreScope {
        store_id,
        scopes: grant.scopes,
        operator: false,
    })
}

/// A platform operator (`Authorization: Bearer <admin token>`), for routes not about one store.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_operator")]
pub struct OperatorAuth(pub ());

/// The operator token passes; a valid store credential is refused with 403 `operator_only`, like every other
/// operator-only route; anything else is 401.
async fn check_operator(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = state(req)?;
    if is_operator(state, &bearer.token) {
        return Ok(());
    }
    match state.validator.validate(&bearer.token).await {
        Ok(Some(_)) => Err(ApiError::OperatorOnly.into()),
        Ok(None) => Err(ApiError::Unauthorized.into()),
        Err(e) => Err(ApiError::Internal(e).into()),
    }
}

/// Any known caller: an API key or access token of any store, whatever its scopes, or the operator token (without
/// `X-SS3-Store-Id`: the data belongs to no store).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_caller")]
pub struct CallerAuth(pub ());

/// The operator token or any valid credential passes; anything else is 401, as on every route.
async fn check_caller(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = state(req)?;
    if is_operator(state, &bearer.token) {
        return Ok(());
    }
    match state.validator.validate(&bearer.token).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::Unauthorized.into()),
        Err(e) => Err(ApiError::Internal(e).into()),
    }
}

/// Whether the gateway presented the configured gateway token (always true when none is configured).
pub fn gateway_allowed(state: &AppState, presented: Option<&str>) -> bool {
    let expected = state.credentials.gateway_token.expose().as_bytes();
    expected.is_empty() || presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected)))
}
