//! `connector_type` → adapter. The framework names no adapter: the composition root fills the registry
//! (`Registry::new().with(amazon::Amazon::new(..))…`), so adding a marketplace is one folder and one line there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::adapter::{ConfiguredConnector, Connector, ConnectorAdapter};
use crate::settings::{Origin, SettingsError};

/// The adapters a deployment offers, by connector type.
#[derive(Clone, Default)]
pub struct Registry {
    adapters: BTreeMap<&'static str, Arc<dyn ConnectorAdapter>>,
}

impl Registry {
    /// A registry without adapters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) the adapter of its connector type.
    pub fn with<C: Connector>(mut self, adapter: C) -> Self {
        let adapter: Arc<dyn ConnectorAdapter> = Arc::new(adapter);
        self.adapters.insert(adapter.connector_type(), adapter);
        self
    }

    /// The adapter of a type.
    pub fn get(&self, connector_type: &str) -> Option<&Arc<dyn ConnectorAdapter>> {
        self.adapters.get(connector_type)
    }

    /// Every adapter, by type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn ConnectorAdapter>> {
        self.adapters.values()
    }

    /// Parse settings given to the API for a `connector_type` config into its adapter bound to them.
    pub fn parse_settings(
        &self,
        connector_type: &str,
        settings: &Value,
    ) -> Result<Arc<dyn ConfiguredConnector>, SettingsError> {
        self.configure(connector_type, settings, Origin::Api)
    }

    /// Parse a stored config's settings (what older versions accepted and ignored is ignored again).
    pub fn parse_stored_settings(
        &self,
        connector_type: &str,
        settings: &Value,
    ) -> Result<Arc<dyn ConfiguredConnector>, SettingsError> {
        self.configure(connector_type, settings, Origin::Stored)
    }

    fn configure(
        &self,
        connector_type: &str,
        settings: &Value,
        origin: Origin,
    ) -> Result<Arc<dyn ConfiguredConnector>, SettingsError> {
        let adapter = self
            .get(connector_type)
            .ok_or_else(|| SettingsError::UnknownType(connector_type.to_owned()))?;
        adapter.clone().configure(settings, origin)
    }
}
