//! Integration tests against real Postgres, tansu (Kafka) and a real local HTTP receiver.
//! One binary (linked once); run them with `scripts/test.sh`, which starts the servers.

mod common;

mod api;
mod broker;
mod chaos;
mod compose;
mod connectors;
mod credentials;
mod kafka;
mod lease;
mod pipeline;
mod processes;
mod restart;
mod vault;
