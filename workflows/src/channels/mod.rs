//! Mapping of the platform's payloads to each channel's request bodies (pure; the adapters in `jobs` send them).

pub mod amazon;
pub mod ebay;
pub mod google;
