//! Partitions that give nothing after being assigned or sought.
//!
//! tansu answers a fetch that starts inside a record batch with the batches *after* it (see `resume::seek_back`).
//! Inside a partition's last batch that is nothing at all until more is produced: the partition looks idle while
//! messages past our stored offset wait in the broker. Measured: a restarted ingest resumed from its last committed
//! offset, inside the last batch of a partition, and never ingested its last 500 messages.
//!
//! So the ingest watches each partition from when it is assigned (or sought) until it gives a message. One that stays
//! quiet for `kafka.stall_check_ms` is sought back before its stored offset, a growing step each time; what it then
//! gives below the stored offset is dropped as already ingested. On a broker without the defect, an idle partition
//! costs one re-read of a few stored messages per assignment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

/// A topic and partition.
pub(super) type Partition = (String, i32);

/// The partitions watched, each since when it has given nothing.
#[derive(Debug, Default)]
pub(super) struct Quiet {
    since: HashMap<Partition, Instant>,
}

impl Quiet {
    /// Watch `partition` from `now`: it was just assigned, or sought.
    pub(super) fn watch(&mut self, partition: Partition, now: Instant) {
        self.since.insert(partition, now);
    }

    /// `partition` gave a message (or is no longer ours): stop watching it.
    pub(super) fn heard(&mut self, topic: &str, partition: i32) {
        // A handful of assigned partitions at most: a scan, without building a key per message.
        self.since
            .retain(|(t, p), _| !(t == topic && *p == partition));
    }

    /// The watched partitions quiet for at least `after`.
    pub(super) fn quiet_for(&self, now: Instant, after: Duration) -> Vec<Partition> {
        let mut quiet: Vec<Partition> = self
            .since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= after)
            .map(|(p, _)| p.clone())
            .collect();
        quiet.sort();
        quiet
    }
}

/// How far back a quiet partition is sought at most: past any record batch a producer makes (librdkafka puts at
/// most 10,000 messages in one by default). Beyond that, or once at the partition's start, the partition is taken
/// as idle (or its broker as unreachable), and re-reading further would cost more than it could find.
const SEEK_AT_MOST: i64 = 1 << 14;

/// Whether a quiet partition whose last seek went `step` before `next`, its stored offset, was sought far enough.
pub(super) fn sought_far_enough(step: Option<i64>, next: i64) -> bool {
    step.is_some_and(|step| step >= SEEK_AT_MOST || step >= next)
}

/// A rebalance, as the ingest loop applies it to its [`Quiet`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    Assigned(Vec<Partition>),
    Revoked(Vec<Partition>),
}

/// The consumer's context: it records each rebalance for the ingest loop, which takes them with [`Self::take`].
#[derive(Default)]
pub struct IngestContext {
    changes: Mutex<Vec<Change>>,
}

impl IngestContext {
    /// The rebalances since the last call, oldest first.
    pub(super) fn take(&self) -> Vec<Change> {
        self.changes
            .lock()
            .map(|mut changes| std::mem::take(&mut *changes))
            .unwrap_or_default()
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for IngestContext {}

impl ConsumerContext for IngestContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let change = match rebalance {
            Rebalance::Assign(list) => Change::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Change::Revoked(partitions(list)),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "Kafka rebalance failed");
                return;
            }
        };
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
        }
    }
}

/// Apply `changes` to `quiet` at `now`.
pub(super) fn apply(quiet: &mut Quiet, changes: Vec<Change>, now: Instant) {
    for change in changes {
        match change {
            Change::Assigned(list) => {
                for p in list {
                    quiet.watch(p, now);
                }
            }
            Change::Revoked(list) => {
                for (topic, partition) in list {
                    quiet.heard(&topic, partition);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_owned(), n)
    }

    #[test]
    fn an_assigned_partition_is_quiet_until_it_gives_a_message() {
        let t0 = Instant::now();
        let mut quiet = Quiet::default();
        apply(&mut quiet, vec![Change::Assigned(vec![p(0), p(1)])], t0);
        let later = t0 + Duration::from_secs(3);
        assert!(
            quiet
                .quiet_for(t0 + Duration::from_secs(1), Duration::from_secs(3))
                .is_empty(),
            "not yet quiet long enough"
        );
        quiet.heard("t", 0);
        assert_eq!(quiet.quiet_for(later, Duration::from_secs(3)), vec![p(1)]);
    }

    #[test]
    fn a_quiet_partition_is_sought_back_until_its_start_or_past_any_record_batch() {
        assert!(!sought_far_enough(None, 5000), "not sought yet");
        assert!(!sought_far_enough(Some(64), 5000));
        assert!(
            sought_far_enough(Some(64), 40),
            "the last seek reached offset 0"
        );
        assert!(sought_far_enough(Some(SEEK_AT_MOST), 1_000_000));
    }

    #[test]
    fn a_sought_partition_is_watched_again_and_a_revoked_one_is_not() {
        let t0 = Instant::now();
        let mut quiet = Quiet::default();
        quiet.watch(p(2), t0);
        apply(
            &mut quiet,
            vec![Change::Assigned(vec![p(3)]), Change::Revoked(vec![p(3)])],
            t0,
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(quiet.quiet_for(later, Duration::from_secs(3)), vec![p(2)]);
        quiet.watch(p(2), later);
        assert!(
            quiet.quiet_for(later, Duration::from_secs(3)).is_empty(),
            "a seek restarts the wait"
        );
    }
}
