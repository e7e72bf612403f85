//! The request rules of connector configs: which connector type, events, settings, poll interval and credentials
//! the API accepts. Each rule is one function; the settings rule is [`parse_settings`].

use std::sync::Arc;

use ::connectors::{ConnectorAdapter, CredentialField, Credentials};
use workflows::EventPattern;

use super::types::{CreateConnector, CredentialsInput, UpdateConnector};
use crate::api::AppState;
use crate::api::code::ProblemCode;
use crate::api::problem::ApiError;
use crate::api::types::{Name, Settings};
use crate::db::connectors::Patch;

/// A create request, parsed: everything [`CreateConnector`] asks for, checked against its connector type.
pub(super) struct NewConnector {
    /// The adapter of the requested type.
    pub adapter: Arc<dyn ConnectorAdapter>,
    /// The events to sync (the adapter's, when none were named).
    pub events: Vec<String>,
    /// Seconds between polls; `None`: it does not poll.
    pub interval: Option<i32>,
    /// The credentials given, complete.
    pub credentials: Option<Credentials>,
    /// Whether it starts active (the default when credentials were given).
    pub activate: bool,
}

/// 409: a connector becomes active only with complete credentials.
pub(super) fn credentials_missing() -> ApiError {
    ApiError::Conflict(
        ProblemCode::ConnectorCredentialsMissing,
        "set credentials before activating".into(),
    )
}

/// Check a create request against its connector type.
pub(super) fn parse_create(
    state: &AppState,
    body: &CreateConnector,
) -> Result<NewConnector, ApiError> {
    let adapter = adapter(state, &body.connector_type)?;
    let default_events: Vec<String> = adapter
        .supported_events()
        .iter()
        .map(|e| (*e).to_owned())
        .collect();
    let named = body.event_subscriptions.as_deref();
    let events = valid_events(adapter.as_ref(), named.unwrap_or(&default_events))?;
    parse_settings(adapter.as_ref(), &body.settings)?;
    let interval = valid_interval(
        adapter.as_ref(),
        body.poll_interval_secs,
        state.connectors_default_poll,
    )?;
    let credentials = body
        .credentials
        .as_ref()
        .map(|c| to_credentials(adapter.as_ref(), c))
        .transpose()?;
    let activate = body.is_active.unwrap_or(credentials.is_some());
    if activate && credentials.is_none() {
        return Err(credentials_missing());
    }
    Ok(NewConnector {
        adapter,
        events,
        interval,
        credentials,
        activate,
    })
}

/// Check an update request against the config's connector type; the patch to write.
pub(super) fn parse_update(
    state: &AppState,
    adapter: &dyn ConnectorAdapter,
    body: &UpdateConnector,
) -> Result<Patch, ApiError> {
    if let Some(s) = &body.settings {
        parse_settings(adapter, s)?;
    }
    let interval = body
        .poll_interval_secs
        .map(|s| valid_interval(adapter, Some(s), state.connectors_default_poll))
        .transpose()?;
    let events = body.event_subscriptions.as_deref();
    Ok(Patch {
        display_name: body.display_name.clone().map(Name::into_inner),
        events: events.map(|e| valid_events(adapter, e)).transpose()?,
        settings: body.settings.clone().map(Settings::into_inner),
        poll_interval_secs: interval,
        is_active: None,
    })
}

/// The API's name of a credential field (`apiKey`, `apiSecret`, `refreshToken`).
pub(super) fn field_name(f: CredentialField) -> &'static str {
    match f {
        CredentialField::ApiKey => "apiKey",
        CredentialField::ApiSecret => "apiSecret",
        CredentialField::RefreshToken => "refreshToken",
    }
}

/// Every credential field the connector needs is among those set.
pub(super) fn credentials_complete(
    adapter: Option<&Arc<dyn ConnectorAdapter>>,
    set: &[String],
) -> bool {
    adapter.is_some_and(|a| {
        a.required_credentials()
            .iter()
            .all(|f| set.iter().any(|s| s == field_name(*f)))
    })
}

/// The adapter of `connector_type`, or 422 `unknown_connector_type` naming the known ones.
pub(super) fn adapter(
    state: &AppState,
    connector_type: &str,
) -> Result<Arc<dyn ConnectorAdapter>, ApiError> {
    state
        .connectors
        .registry
        .get(connector_type)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = state
                .connectors
                .registry
                .all()
                .map(|a| a.connector_type())
                .collect();
            ApiError::Invalid(
                ProblemCode::UnknownConnectorType,
                format!("{connector_type:?} is not one of {}", known.join(", ")),
            )
        })
}

/// The events to sync: each a known event type the connector handles, deduplicated.
pub(super) fn valid_events(
    adapter: &dyn ConnectorAdapter,
    events: &[String],
) -> Result<Vec<String>, ApiError> {
    let supported = adapter.supported_events();
    let mut out: Vec<String> = Vec::new();
    for raw in events {
        let pattern = EventPattern::parse(raw.trim())
            .map_err(|e| ApiError::Invalid(ProblemCode::InvalidEventType, e.to_string()))?;
        if !supported.contains(&pattern.as_str()) {
            return Err(ApiError::Invalid(
                ProblemCode::UnsupportedEvent,
                format!(
                    "{} handles {}, not {}",
                    adapter.connector_type(),
                    supported.join(", "),
                    pattern.as_str()
                ),
            ));
        }
        if !out.iter().any(|e| e == pattern.as_str()) {
            out.push(pattern.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The connector's settings rule: a JSON object its adapter accepts. The one place the API checks settings, so
/// the connector registry's typed parser can replace it.
pub(super) fn parse_settings(
    adapter: &dyn ConnectorAdapter,
    settings: &Settings,
) -> Result<(), ApiError> {
    let settings = settings.as_value();
    if !settings.is_object() {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidSettings,
            "settings must be a JSON object".into(),
        ));
    }
    adapter
        .check_settings(settings)
        .map_err(|e| ApiError::Invalid(ProblemCode::InvalidSettings, e.to_string()))
}

/// The poll interval to store: `None` for a connector that does not poll or for 0, else 1-86400 seconds.
pub(super) fn valid_interval(
    adapter: &dyn ConnectorAdapter,
    secs: Option<i32>,
    default: u32,
) -> Result<Option<i32>, ApiError> {
    match (adapter.polls(), secs) {
        (_, Some(0)) | (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::Invalid(
            ProblemCode::ConnectorDoesNotPoll,
            format!("{} does not poll", adapter.connector_type()),
        )),
        (true, Some(s)) if !(1..=86_400).contains(&s) => Err(ApiError::Invalid(
            ProblemCode::InvalidPollInterval,
            "pollIntervalSecs must be 1-86400".into(),
        )),
        (true, s) => Ok(Some(s.unwrap_or(default as i32))),
    }
}

/// The credentials given, when they include every field the connector requires (blank fields count as absent).
pub(super) fn to_credentials(
    adapter: &dyn ConnectorAdapter,
    input: &CredentialsInput,
) -> Result<Credentials, ApiError> {
    let mut c = Credentials::default();
    for (field, value) in [
        (CredentialField::ApiKey, &input.api_key),
        (CredentialField::ApiSecret, &input.api_secret),
        (CredentialField::RefreshToken, &input.refresh_token),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.trim().is_empty()) {
            c.0.insert(field, v.clone());
        }
    }
    let missing: Vec<&str> = adapter
        .required_credentials()
        .iter()
        .filter(|f| !c.0.contains_key(f))
        .map(|f| field_name(*f))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Invalid(
            ProblemCode::CredentialsIncomplete,
            format!("{} needs {}", adapter.connector_type(), missing.join(", ")),
        ));
    }
    Ok(c)
}
