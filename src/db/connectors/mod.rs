//! Connectors in Postgres, one module per aggregate: their configs, their outbound jobs, their polls, and the sync
//! log both write to.

pub mod configs;
pub mod jobs;
pub mod polls;
pub mod sync_log;

pub use configs::{
    ConfigRow, NewConfig, Patch, credentials_erased, delete, get, insert, list, mark_credentials,
    pending_erasure, update,
};
pub use jobs::{JobRow, get_job, list_jobs, retrigger};
pub use polls::schedule_poll;
pub use sync_log::{LogFilter, SyncRunRow, sync_log};
