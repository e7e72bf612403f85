//! Connector jobs: the outbound sync and the inbound poll of a configured connector. The adapters and their
//! framework are the `connectors` crate.

pub mod handler;
