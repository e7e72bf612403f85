//! Connectors of integration-service. A *connector* is a store's configured integration with a marketplace and the
//! adapter that serves its type; a *channel* is only the remote marketplace API an adapter calls.
//!
//! The framework (this crate's root modules) defines the adapter contract ([`Connector`]), the [`Registry`] the
//! composition root fills, typed settings, HTTP to channels under a shared rate limit ([`ChannelClient`]) and the
//! access-token cache. Each marketplace is one folder — [`amazon`], [`ebay`], [`google`] — holding its adapter,
//! its pure request mapping and (feature `fake`) a fake of its API for tests. The framework never names them.

pub mod adapter;
pub mod channel;
pub mod credentials;
pub mod model;
pub mod registry;
pub mod settings;
pub mod tokens;

pub mod amazon;
pub mod ebay;
pub mod google;

#[cfg(feature = "fake")]
pub mod fake;

pub use adapter::{ConfiguredConnector, Connector, ConnectorAdapter};
pub use channel::{
    Body, CONFIG_BUCKET, ChannelClient, ChannelHttp, ChannelRequest, ChannelResponse, Method,
    Operation, RateGate,
};
pub use credentials::{CredentialField, Credentials};
pub use model::{
    ConnectorConfig, ConnectorContext, ConnectorError, ConnectorEvent, PollReport, PolledRecord,
    SyncReport,
};
pub use registry::Registry;
pub use settings::SettingsError;
