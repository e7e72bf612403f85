//! `POST /subscriptions/{id}/rotate-secret`: a new signing secret, shown once, with an optional grace period (at
//! most 7 days) during which deliveries carry the previous secret's signature too (`webhook-signature:
//! v1,<new> v1,<old>`, as Standard Webhooks allows; `X-SS3-Signature` has the new one only).

use chrono::{DateTime, Duration, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use workflows::ids::SubscriptionId;

use super::not_found;
use crate::api::auth::WebhooksAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::{AppState, Tag};
use crate::db::subscriptions;
use crate::secrets::{new_signing_secret, webhook_secret_version_path};

/// Longest grace of a rotated signing secret: 7 days.
pub const MAX_GRACE_SECS: u32 = 7 * 86_400;

/// A rotation request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RotateSigningSecret {
    /// Seconds the previous secret keeps signing too (0 or absent: it stops at once; at most 604800).
    pub grace_seconds: Option<u32>,
}

/// The new secret, shown this once.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RotatedSigningSecret {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The new signing secret (`whsec_…`): store it now, it is never shown again.
    pub signing_secret: String,
    /// Until when deliveries are signed with the previous secret too (absent: they are not).
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// Signing-secret rotation.
pub struct RotateApi;

#[OpenApi(tag = "Tag::Subscriptions")]
impl RotateApi {
    /// Give the subscription a new signing secret; the previous one also signs for `graceSeconds`.
    #[oai(path = "/subscriptions/:id/rotate-secret", method = "post")]
    pub async fn rotate(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        body: Json<RotateSigningSecret>,
    ) -> Result<Json<RotatedSigningSecret>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>>
    {
        let grace = body.grace_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECS {
            return Err(ApiError::Invalid(
                ProblemCode::InvalidGrace,
                format!("graceSeconds must be at most {MAX_GRACE_SECS} (7 days)"),
            )
            .into());
        }
        Ok(Json(rotate(&state, &auth.0.store_id, id.0, grace).await?))
    }
}

/// Rotate the store's subscription `id`'s signing secret with `grace_secs` of overlap (the service clock's now).
pub async fn rotate(
    state: &AppState,
    store_id: &workflows::StoreId,
    id: SubscriptionId,
    grace_secs: u32,
) -> Result<RotatedSigningSecret, ApiError> {
    let until =
        (grace_secs > 0).then(|| state.clock.now() + Duration::seconds(i64::from(grace_secs)));
    let secret = new_signing_secret();
    let mut tx = state.pool.begin().await?;
    let version = subscriptions::next_secret_version(&mut tx, store_id, id, until)
        .await?
        .ok_or_else(|| not_found(id))?;
    // Written before the commit: a secret store that refuses it leaves the subscription as it was.
    state
        .secrets
        .put(&webhook_secret_version_path(id, version), &secret)
        .await
        .map_err(|e| ApiError::Unavailable(ProblemCode::SecretStoreUnavailable, e.to_string()))?;
    tx.commit().await?;
    // The version before the previous one signs nothing any more.
    if version >= 2 {
        let _ = state
            .secrets
            .delete(&webhook_secret_version_path(id, version - 2))
            .await;
    }
    Ok(RotatedSigningSecret {
        subscription_id: id,
        signing_secret: secret,
        previous_valid_until: until,
    })
}
