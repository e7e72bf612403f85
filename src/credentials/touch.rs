//! Coalesced `last_used_at`: at most one write per credential per `precision`, flushed in batches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use workflows::ids::CredentialId;

#[derive(Default)]
struct Inner {
    last_recorded: HashMap<CredentialId, Instant>,
    pending: HashMap<CredentialId, DateTime<Utc>>,
}

/// Uses waiting to be written.
pub struct Touches {
    precision: Duration,
    inner: Mutex<Inner>,
}

impl Touches {
    pub fn new(precision: Duration) -> Self {
        Self {
            precision,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note a use; ignored if this credential's last recorded use is more recent than `precision`.
    pub fn record(&self, id: CredentialId, at: DateTime<Utc>) {
        let mut inner = self.lock();
        let due = inner
            .last_recorded
            .get(&id)
            .is_none_or(|last| last.elapsed() >= self.precision);
        if due {
            inner.last_recorded.insert(id, Instant::now());
            inner.pending.insert(id, at);
        }
        if inner.last_recorded.len() > 1_000_000 {
            inner.last_recorded.clear();
        }
    }

    /// Everything waiting, emptied.
    pub fn take(&self) -> (Vec<CredentialId>, Vec<DateTime<Utc>>) {
        self.lock().pending.drain().unzip()
    }

    /// A failed write's uses, kept for the next flush.
    pub fn put_back(&self, ids: Vec<CredentialId>, at: Vec<DateTime<Utc>>) {
        let mut inner = self.lock();
        for (id, at) in ids.into_iter().zip(at) {
            inner.pending.entry(id).or_insert(at);
        }
    }
}
