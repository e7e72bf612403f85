//! Integration tests against real Postgres, tansu (Kafka) and a real local HTTP receiver.
//! One binary (linked once); run them with `scripts/test.sh`, which starts the servers.

mod common;

mod api;
mod broker;
mod compose;
mod connectors;
mod credentials;
mod flood;
mod kafka;
mod pipeline;
mod processes;
mod restart;
mod vault;
