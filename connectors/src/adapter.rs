//! The adapter contract. A marketplace implements [`Connector`] with its own typed settings; the framework sees
//! it as a [`ConnectorAdapter`] (object-safe, in the [`crate::Registry`]), which parses a config's settings into a
//! [`ConfiguredConnector`]: the adapter bound to those settings, which is what jobs and connection tests call.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use workflows::ratelimit::RateLimit;

use crate::credentials::CredentialField;
use crate::model::{ConnectorContext, ConnectorError, ConnectorEvent, PollReport, SyncReport};
use crate::settings::{self, Origin, SettingsError};

/// One marketplace's adapter, with its settings type.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Its settings (serde, `deny_unknown_fields`, validated values); `rateLimit` is the framework's.
    type Settings: DeserializeOwned + Send + Sync + 'static;
    /// The `connector_type` this adapter serves.
    fn connector_type(&self) -> &'static str;
    /// Domain events it can handle (also a new config's default subscriptions).
    fn supported_events(&self) -> &'static [&'static str];
    /// Credential fields a config of this type needs.
    fn required_credentials(&self) -> &'static [CredentialField];
    /// Rate limit when the settings do not set one.
    fn default_rate_limit(&self) -> RateLimit;
    /// Whether it pulls changes with [`Connector::poll`].
    fn polls(&self) -> bool {
        false
    }
    /// Push one domain event to the channel (outbound).
    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        settings: &Self::Settings,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError>;
    /// Pull what changed since `cursor` (inbound).
    async fn poll(
        &self,
        _ctx: &ConnectorContext<'_>,
        _settings: &Self::Settings,
        _cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        Err(ConnectorError::Settings(format!(
            "{} does not poll",
            Connector::connector_type(self)
        )))
    }
    /// Prove the credentials and settings work with one cheap authenticated call; returns what was checked.
    async fn test_connection(
        &self,
        ctx: &ConnectorContext<'_>,
        settings: &Self::Settings,
    ) -> Result<String, ConnectorError>;
}

/// A [`Connector`] as the framework holds it, whatever its settings type.
pub trait ConnectorAdapter: Send + Sync {
    /// The `connector_type` this adapter serves.
    fn connector_type(&self) -> &'static str;
    /// Domain events it can handle (also a new config's default subscriptions).
    fn supported_events(&self) -> &'static [&'static str];
    /// Credential fields a config of this type needs.
    fn required_credentials(&self) -> &'static [CredentialField];
    /// Whether it pulls changes on a schedule.
    fn polls(&self) -> bool;
    /// Refuse settings that do not parse, as the API does on create and update.
    fn check_settings(&self, settings: &Value) -> Result<(), SettingsError>;
    /// Bind the adapter to a config's parsed settings.
    fn configure(
        self: Arc<Self>,
        settings: &Value,
        origin: Origin,
    ) -> Result<Arc<dyn ConfiguredConnector>, SettingsError>;
}

/// An adapter bound to one config's typed settings.
#[async_trait]
pub trait ConfiguredConnector: Send + Sync {
    /// Credential fields the config needs.
    fn required_credentials(&self) -> &'static [CredentialField];
    /// The config's rate limit: its `rateLimit` setting, or the adapter's default.
    fn rate_limit(&self) -> RateLimit;
    /// Whether its calls also keep to each operation's usage plan: unless its `rateLimit` setting overrides them.
    fn operation_plans(&self) -> bool;
    /// Push one domain event to the channel (outbound).
    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError>;
    /// Pull what changed since `cursor` (inbound).
    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError>;
    /// Prove the credentials and settings work with one cheap authenticated call.
    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError>;
}

impl<C: Connector> ConnectorAdapter for C {
    fn connector_type(&self) -> &'static str {
        Connector::connector_type(self)
    }
    fn supported_events(&self) -> &'static [&'static str] {
        Connector::supported_events(self)
    }
    fn required_credentials(&self) -> &'static [CredentialField] {
        Connector::required_credentials(self)
    }
    fn polls(&self) -> bool {
        Connector::polls(self)
    }
    fn check_settings(&self, settings: &Value) -> Result<(), SettingsError> {
        settings::parse::<C::Settings>(Connector::connector_type(self), settings, Origin::Api)
            .map(drop)
    }
    fn configure(
        self: Arc<Self>,
        settings: &Value,
        origin: Origin,
    ) -> Result<Arc<dyn ConfiguredConnector>, SettingsError> {
        let (rate_limit, settings) =
            settings::parse::<C::Settings>(Connector::connector_type(&*self), settings, origin)?;
        Ok(Arc::new(Configured {
            adapter: self,
            settings,
            rate_limit,
        }))
    }
}

/// A [`Connector`] with its parsed settings.
struct Configured<C: Connector> {
    adapter: Arc<C>,
    settings: C::Settings,
    rate_limit: Option<RateLimit>,
}

#[async_trait]
impl<C: Connector> ConfiguredConnector for Configured<C> {
    fn required_credentials(&self) -> &'static [CredentialField] {
        Connector::required_credentials(&*self.adapter)
    }
    fn rate_limit(&self) -> RateLimit {
        self.rate_limit
            .unwrap_or_else(|| self.adapter.default_rate_limit())
    }
    fn operation_plans(&self) -> bool {
        self.rate_limit.is_none()
    }
    async fn handle_event(
        &self,
        ctx: &ConnectorContext<'_>,
        event: &ConnectorEvent,
    ) -> Result<SyncReport, ConnectorError> {
        self.adapter.handle_event(ctx, &self.settings, event).await
    }
    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        cursor: Option<&str>,
    ) -> Result<PollReport, ConnectorError> {
        self.adapter.poll(ctx, &self.settings, cursor).await
    }
    async fn test_connection(&self, ctx: &ConnectorContext<'_>) -> Result<String, ConnectorError> {
        self.adapter.test_connection(ctx, &self.settings).await
    }
}
