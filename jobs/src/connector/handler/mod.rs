//! The two connector jobs: an outbound sync of one event to one connector (an outbound kind of the attempt engine,
//! like a webhook delivery: [`sync`]), and a scheduled inbound poll ([`poll`]). Both return effects as values, and
//! both prepare a call the same way: the adapter, the credentials and the rate-limited channel of the connector.

pub mod poll;
pub mod sync;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use workflows::ids::ConnectorId;

pub use self::poll::{PollConnector, PollEffect, PollRecord, PollToRun, handle_poll};
pub use self::sync::{
    ConnectorJobToRun, SyncConnector, SyncEffect, SyncExtras, SyncRecord, handle_sync,
};
use crate::attempt::Pacing;
pub use crate::attempt::{DeferCause, Handled};
use crate::ports::SecretError;
use connectors::{
    ChannelClient, ChannelHttp, ConfiguredConnector, ConnectorConfig, ConnectorError, Credentials,
    RateGate, Registry,
};

/// Reads connector credentials.
#[async_trait]
pub trait ConnectorSecrets: Send + Sync {
    /// Every credential field set for the config (an empty set when none is).
    async fn credentials(&self, config_id: ConnectorId) -> Result<Credentials, SecretError>;
}

/// Dependencies of the connector handlers.
#[derive(Clone)]
pub struct ConnectorDeps {
    /// The adapters, by connector type.
    pub registry: Arc<Registry>,
    /// Reads each connector's credentials.
    pub secrets: Arc<dyn ConnectorSecrets>,
    /// HTTP to the marketplaces.
    pub http: Arc<dyn ChannelHttp>,
    /// Per-config rate limits, shared by every process.
    pub gate: Arc<dyn RateGate>,
    /// Clock, time scale, secret retry and worker name (for the sync log).
    pub pacing: Pacing,
    /// A `Retry-After` up to this is waited out in place.
    pub max_inline_wait: Duration,
}

/// An adapter bound to the connector's parsed settings, with what it needs for one call: the connector's
/// credentials and its rate-limited channel.
pub type Prepared = (Arc<dyn ConfiguredConnector>, Credentials, ChannelClient);

/// A rate-limited job waits `wait` plus up to as much again, so a backlog deferred together does not come back
/// all at once (real time: rate limits run on Postgres' clock, whatever the service clock's scale).
fn spread(wait: Duration) -> Duration {
    let jitter = wait.as_millis().max(200) as u64;
    wait + Duration::from_millis(rand::random_range(0..jitter))
}

/// Why a context could not be built.
pub enum NoContext {
    /// The secret store is unavailable: try later.
    SecretsUnavailable(String),
    /// Something a retry cannot fix (unknown type, bad settings, missing credentials).
    Broken(ConnectorError),
}

impl ConnectorDeps {
    /// The adapter bound to a config's parsed settings, its credentials and its rate-limited channel.
    pub async fn prepare(&self, config: &ConnectorConfig) -> Result<Prepared, NoContext> {
        let adapter = self
            .registry
            .parse_stored_settings(&config.connector_type, &config.settings)
            .map_err(|e| NoContext::Broken(e.into()))?;
        let config_id = config.config_id;
        let credentials = match self.secrets.credentials(config_id).await {
            Ok(c) => c,
            Err(SecretError::Unavailable(why)) => return Err(NoContext::SecretsUnavailable(why)),
            Err(SecretError::NotFound) => Credentials::default(),
        };
        for field in adapter.required_credentials() {
            credentials.require(*field).map_err(NoContext::Broken)?;
        }
        let channel = ChannelClient::new(
            self.http.clone(),
            self.gate.clone(),
            config_id,
            adapter.rate_limit(),
            self.max_inline_wait,
        )
        .with_operation_plans(adapter.operation_plans());
        Ok((adapter, credentials, channel))
    }
}
