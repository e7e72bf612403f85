//! Outgoing webhooks: target URL policy and the HTTP sender.

pub mod http;
pub mod target;

#[cfg(test)]
mod target_props;
