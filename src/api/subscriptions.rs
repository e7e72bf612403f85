//! `/subscriptions`: create (the signing secret is shown once), list, get, update, delete, test.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;
use workflows::{EventEnvelope, EventPattern, EventType};

use super::auth::WebhooksAuth;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::types::Name;
use super::{AppState, Tag, next_page, page_limit};
use crate::db::events::{EventSource, Ingested};
use crate::db::subscriptions::{self, Patch, SubscriptionRow};
use crate::delivery::target::{TargetError, TargetUrl};
use crate::secrets::{new_signing_secret, webhook_secret_path};

/// Scope needed for everything here.
pub const SCOPE: &str = "webhooks:manage";

/// A new subscription.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateSubscription {
    /// Display name (1–200 characters, no control characters; stored trimmed).
    pub name: Name,
    /// Absolute http(s) URL receiving the POSTs.
    pub target_url: String,
    /// Event names (`order.placed`), prefix wildcards (`order.*`) or `*`.
    pub events: Vec<String>,
    /// Defaults to true.
    pub is_active: Option<bool>,
}

/// Changes; absent fields are kept.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateSubscription {
    /// New name (1–200 characters, no control characters; stored trimmed).
    pub name: Option<Name>,
    /// New target.
    pub target_url: Option<String>,
    /// New event filter.
    pub events: Option<Vec<String>>,
    /// Deactivating stops pending retries (their status becomes CANCELLED).
    pub is_active: Option<bool>,
}

/// A subscription (never its secret).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Subscription {
    /// Id.
    pub subscription_id: Uuid,
    /// Store.
    pub store_id: String,
    /// Name.
    pub name: String,
    /// Target.
    pub target_url: String,
    /// Event filter.
    pub events: Vec<String>,
    /// Active.
    pub is_active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// The create answer: the only time the signing secret is shown.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedSubscription {
    /// The subscription.
    pub subscription: Subscription,
    /// `whsec_…`: store it now; it is never shown again.
    pub signing_secret: String,
}

/// A page of subscriptions.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SubscriptionPage {
    /// Items, oldest first.
    pub items: Vec<Subscription>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What `POST /subscriptions/{id}/test` queued.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TestSent {
    /// The synthetic event.
    pub event_id: Uuid,
    /// Its delivery (follow it in the log).
    pub delivery_id: Uuid,
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CreatedSubscription>),
}

#[derive(ApiResponse)]
enum Accepted {
    /// Queued.
    #[oai(status = 202)]
    Accepted(Json<TestSent>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted; its deliveries stay in the log.
    #[oai(status = 204)]
    NoContent,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Self {
            subscription_id: r.subscription_id,
            store_id: r.store_id,
            name: r.name,
            target_url: r.target_url,
            events: r.events,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(
        "subscription_not_found",
        format!("subscription {id} does not exist in this store"),
    )
}

fn valid_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() || events.len() > 100 {
        return Err(ApiError::Invalid(
            "invalid_event_type",
            "events must list 1-100 event names or patterns".into(),
        ));
    }
    let mut out = Vec::with_capacity(events.len());
    for raw in events {
        let pattern = EventPattern::parse(raw.trim())
            .map_err(|e| ApiError::Invalid("invalid_event_type", e.to_string()))?;
        if !out.iter().any(|p: &String| p == pattern.as_str()) {
            out.push(pattern.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The target URLs this API accepts, as the OpenAPI document states them: `http(s)://`, a host name whose last label
/// starts with a letter, an IPv4 address or a bracketed IPv6 address (RFC 3986's grammar), an optional port, then
/// RFC 3986 path and query characters. Narrower than what a WHATWG parser accepts, on purpose: a document cannot
/// state the WHATWG language, and a receiver URL needs none of the rest (user info, fragments, Unicode hosts).
pub fn target_url_pattern() -> &'static str {
    static PATTERN: LazyLock<String> = LazyLock::new(|| {
        let octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
        let ipv4 = format!("({octet}\\.){{3}}{octet}");
        let h16 = "[0-9A-Fa-f]{1,4}";
        let ls32 = format!("({h16}:{h16}|{ipv4})");
        let ipv6 = [
            format!("({h16}:){{6}}{ls32}"),
            format!("::({h16}:){{5}}{ls32}"),
            format!("({h16})?::({h16}:){{4}}{ls32}"),
            format!("(({h16}:){{0,1}}{h16})?::({h16}:){{3}}{ls32}"),
            format!("(({h16}:){{0,2}}{h16})?::({h16}:){{2}}{ls32}"),
            format!("(({h16}:){{0,3}}{h16})?::{h16}:{ls32}"),
            format!("(({h16}:){{0,4}}{h16})?::{ls32}"),
            format!("(({h16}:){{0,5}}{h16})?::{h16}"),
            format!("(({h16}:){{0,6}}{h16})?::"),
        ]
        .join("|");
        let label = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?";
        let name = format!("({label}\\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?");
        let port =
            "(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?";
        let path = "(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?";
        format!("^[Hh][Tt][Tt][Pp][Ss]?://({name}|{ipv4}|\\[({ipv6})\\]){port}{path}$")
    });
    &PATTERN
}

fn documented_target(raw: &str) -> bool {
    static PATTERN: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(target_url_pattern()).ok());
    PATTERN.as_ref().is_some_and(|p| p.is_match(raw))
}

async fn valid_target(state: &AppState, raw: &str) -> Result<String, ApiError> {
    if !documented_target(raw) {
        return Err(ApiError::Invalid(
            "invalid_target_url",
            "target_url must be http(s)://host[:port][/path][?query] with a DNS name or IP address"
                .into(),
        ));
    }
    let url = TargetUrl::parse(raw)
        .map_err(|e| ApiError::Invalid("invalid_target_url", e.to_string()))?;
    url.check(&state.target_policy).await.map_err(|e| match e {
        TargetError::Invalid(_) => ApiError::Invalid("invalid_target_url", e.to_string()),
        TargetError::NotAllowed(_) => ApiError::Invalid("target_not_allowed", e.to_string()),
    })?;
    Ok(url.as_str().to_owned())
}

/// Why a subscription could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The insert failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The signing secret could not be stored.
    #[error(transparent)]
    SecretStore(#[from] crate::secrets::SecretStoreError),
}

/// Insert a (validated) subscription and store its new signing secret before the row commits, so a worker never
/// sees a subscription without its secret. Returns the row and the secret (shown to the caller once).
pub async fn create_with_secret(
    state: &AppState,
    store_id: &str,
    name: &str,
    target: &str,
    events: &[String],
    is_active: bool,
) -> Result<(SubscriptionRow, String), CreateError> {
    let secret = new_signing_secret();
    let mut tx = state.pool.begin().await?;
    let row = subscriptions::insert(&mut tx, store_id, name, target, events, is_active).await?;
    state
        .secrets
        .put(&webhook_secret_path(row.subscription_id), &secret)
        .await?;
    tx.commit().await?;
    Ok((row, secret))
}

/// The subscriptions resource.
pub struct SubscriptionsApi;

#[OpenApi(tag = "Tag::Subscriptions")]
impl SubscriptionsApi {
    /// Create a subscription; the answer carries its signing secret, shown this once.
    #[oai(path = "/subscriptions", method = "post")]
    async fn create(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        body: Json<CreateSubscription>,
    ) -> Result<Created, Problems<{ STORE_CALLER | JSON_BODY }>> {
        let events = valid_events(&body.events)?;
        let target = valid_target(&state, &body.target_url).await?;
        let (row, secret) = create_with_secret(
            &state,
            auth.0.store_id.as_str(),
            &body.name,
            &target,
            &events,
            body.is_active.unwrap_or(true),
        )
        .await
        .map_err(|e| match e {
            CreateError::Database(e) => ApiError::from(e),
            CreateError::SecretStore(e) => {
                ApiError::Unavailable("secret_store_unavailable", e.to_string())
            }
        })?;
        Ok(Created::Created(Json(CreatedSubscription {
            subscription: row.into(),
            signing_secret: secret,
        })))
    }

    /// List the store's subscriptions.
    #[oai(path = "/subscriptions", method = "get")]
    async fn list(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        cursor: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<SubscriptionPage>, Problems<{ STORE_CALLER }>> {
        let limit = page_limit(limit.0);
        let rows = subscriptions::list(&state.pool, auth.0.store_id.as_str(), cursor.0, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (items, next_cursor) = next_page(rows, limit, |x: &Subscription| {
            x.subscription_id.to_string()
        });
        Ok(Json(SubscriptionPage { items, next_cursor }))
    }

    /// One subscription.
    #[oai(path = "/subscriptions/:id", method = "get")]
    async fn get(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Json<Subscription>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let row = subscriptions::get(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(row.ok_or_else(|| not_found(id.0))?.into()))
    }

    /// Change name, target, events or activity.
    #[oai(path = "/subscriptions/:id", method = "patch")]
    async fn update(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateSubscription>,
    ) -> Result<Json<Subscription>, Problems<{ STORE_CALLER | JSON_BODY | NOT_FOUND }>> {
        let target_url = match &body.target_url {
            Some(raw) => Some(valid_target(&state, raw).await?),
            None => None,
        };
        let patch = Patch {
            name: body.name.clone().map(Name::into_inner),
            target_url,
            events: body.events.as_deref().map(valid_events).transpose()?,
            is_active: body.is_active,
        };
        let row = subscriptions::update(&state.pool, auth.0.store_id.as_str(), id.0, &patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(row.ok_or_else(|| not_found(id.0))?.into()))
    }

    /// Delete: no more deliveries; the delivery log keeps its history.
    #[oai(path = "/subscriptions/:id", method = "delete")]
    async fn delete(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Deleted, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        if subscriptions::delete(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?
        {
            Ok(Deleted::NoContent)
        } else {
            Err(not_found(id.0).into())
        }
    }

    /// Send a synthetic `webhook.test` event to this subscription through the real pipeline.
    #[oai(path = "/subscriptions/:id/test", method = "post")]
    async fn test(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Accepted, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let row = subscriptions::get(&state.pool, auth.0.store_id.as_str(), id.0)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or_else(|| not_found(id.0))?;
        if !row.is_active {
            return Err(ApiError::Conflict(
                "subscription_inactive",
                "activate the subscription first".into(),
            )
            .into());
        }
        let event = EventEnvelope {
            event_id: Uuid::now_v7(),
            event_type: EventType::parse("webhook.test")
                .map_err(|e| ApiError::Internal(e.into()))?,
            store_id: auth.0.store_id.clone(),
            occurred_at: Utc::now(),
            data: serde_json::json!({"subscriptionId": row.subscription_id, "message": "Test delivery from ShopSTAR3"}),
            previous_attributes: None,
        };
        match state
            .ingestor
            .ingest_one(&event, EventSource::Test, Some(row.subscription_id))
            .await
            .map_err(ApiError::from)?
        {
            Ingested::New { deliveries, .. } if deliveries.len() == 1 => {
                Ok(Accepted::Accepted(Json(TestSent {
                    event_id: event.event_id,
                    delivery_id: deliveries[0],
                })))
            }
            other => {
                Err(ApiError::Internal(anyhow::anyhow!("test event fan-out gave {other:?}")).into())
            }
        }
    }
}
