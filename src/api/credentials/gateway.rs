//! What the API gateway and clients call without a store's credential: `GET /credentials/validate` (the gateway,
//! with its own token) and `GET /scopes`.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use workflows::credentials::{SCOPES, Scope};

use super::types::{ScopeInfo, Validation};
use crate::api::auth::gateway_allowed;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::{AppState, Tag};

/// The credential presented: `X-API-Key`, else the bearer token of `Authorization`.
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

/// Gateway validation and the scope list.
pub struct GatewayApi;

#[OpenApi(tag = "Tag::Credentials")]
impl GatewayApi {
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
}
