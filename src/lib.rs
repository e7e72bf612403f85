//! integration-service: connects ShopSTAR3 to the outside world (webhooks, API credentials, connectors).

pub mod admin;
pub mod api;
pub mod config;
pub mod connectors;
pub mod credentials;
pub mod db;
pub mod delivery;
pub mod ingest;
pub mod metrics;
pub mod publisher;
pub mod secrets;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
