//! Integration tests against real Postgres, tansu (Kafka) and a real local HTTP receiver.
//! One binary (linked once); run them with `scripts/test.sh`, which starts the servers.
//! A test is one scenario read top to bottom (arrange, act, assert in order), so the production bound on function
//! length does not apply to test functions; helpers in `common/` keep it.

#![allow(clippy::too_many_lines)]

mod common;

mod admin;
mod admin_browser;
mod api;
mod auto_disable;
mod broker;
mod chaos;
mod commit_outcome;
mod compose;
mod connector_security;
mod connectors;
mod credentials;
mod edge;
mod edge_limits;
mod event_types;
mod fair;
mod flood;
mod group_commit;
mod handoff;
mod kafka;
mod lease;
mod openapi;
mod ordering;
mod ordering_kafka;
mod parked;
mod payload_filters;
mod payload_once;
mod pipeline;
mod poison;
mod processes;
mod rate_limit;
mod relay;
mod restart;
mod retention;
mod roles;
mod rotation;
mod stats;
mod targets;
mod telemetry;
mod vault;
mod vault_startup;
mod wakeups;
