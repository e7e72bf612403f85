//! Process counters, exposed at `/metrics` in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use jobs::attempt::Handled;
use workflows::DeliveryStatus;

/// Upper bounds (ms) of the delivery latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] =
    [5, 10, 25, 50, 100, 250, 1_000, 10_000, 60_000, 3_600_000];

/// Counters of this process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events accepted (Kafka and HTTP).
    pub events_ingested: AtomicU64,
    /// Duplicate events ignored.
    pub events_duplicate: AtomicU64,
    /// Messages quarantined.
    pub messages_quarantined: AtomicU64,
    /// Attempts that delivered.
    pub attempts_delivered: AtomicU64,
    /// Attempts that failed.
    pub attempts_failed: AtomicU64,
    /// Deliveries dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Jobs that found their delivery moved on.
    pub jobs_stale: AtomicU64,
    /// Deliveries cancelled.
    pub cancelled: AtomicU64,
    /// Attempts deferred (secret store unavailable).
    pub deferred: AtomicU64,
    /// Jobs that ran early and were re-queued for their due time.
    pub not_yet_due: AtomicU64,
    /// Jobs that hit an infrastructure error.
    pub job_errors: AtomicU64,
    /// Events published to Kafka.
    pub published: AtomicU64,
    /// Attempts by their number in the schedule (index 0 = attempt 1).
    pub attempts_by_number: [AtomicU64; 5],
    /// Event → 2xx latency of delivered attempts, cumulative buckets (see `LATENCY_BUCKETS_MS`).
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    /// Sum of those latencies in ms.
    pub latency_sum_ms: AtomicU64,
    /// How many latencies were recorded (the histogram's +Inf bucket).
    pub latency_count: AtomicU64,
    /// Validations answered valid.
    pub validations_valid: AtomicU64,
    /// Validations answered invalid.
    pub validations_invalid: AtomicU64,
    /// Connector sync attempts that succeeded (or had nothing to do).
    pub connector_synced: AtomicU64,
    /// Connector sync attempts that failed.
    pub connector_failed: AtomicU64,
    /// Connector jobs dead-lettered.
    pub connector_dead_lettered: AtomicU64,
    /// Connector polls run.
    pub connector_polls: AtomicU64,
    /// Records pulled by polls (before deduplication).
    pub connector_polled_records: AtomicU64,
}

impl Metrics {
    /// Count a handled delivery job.
    pub fn record_handled(&self, handled: Result<&Handled, &String>) {
        let counter = match handled {
            Ok(Handled::Attempted {
                status: DeliveryStatus::Delivered,
            }) => &self.attempts_delivered,
            Ok(Handled::Attempted { status }) => {
                if status == &DeliveryStatus::DeadLettered {
                    self.dead_lettered.fetch_add(1, Relaxed);
                }
                &self.attempts_failed
            }
            Ok(Handled::Stale) => &self.jobs_stale,
            Ok(Handled::Cancelled) => &self.cancelled,
            Ok(Handled::Deferred(_)) => &self.deferred,
            Ok(Handled::NotYetDue) => &self.not_yet_due,
            Ok(Handled::Polled { .. }) => &self.connector_polls,
            Err(_) => &self.job_errors,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Count a handled connector job.
    pub fn record_connector(&self, handled: &Handled) {
        use Handled as C;
        match handled {
            C::Attempted {
                status: DeliveryStatus::Delivered,
            } => self.connector_synced.fetch_add(1, Relaxed),
            C::Attempted { status } => {
                if *status == DeliveryStatus::DeadLettered {
                    self.connector_dead_lettered.fetch_add(1, Relaxed);
                }
                self.connector_failed.fetch_add(1, Relaxed)
            }
            C::Polled { published, .. } => {
                self.connector_polled_records
                    .fetch_add(*published as u64, Relaxed);
                self.connector_polls.fetch_add(1, Relaxed)
            }
            C::Stale => self.jobs_stale.fetch_add(1, Relaxed),
            C::Cancelled => self.cancelled.fetch_add(1, Relaxed),
            C::Deferred(_) => self.deferred.fetch_add(1, Relaxed),
            C::NotYetDue => self.not_yet_due.fetch_add(1, Relaxed),
        };
    }

    /// Count an attempt (1-based number) and, when delivered, how long after the event was created.
    pub fn record_attempt(&self, number: u32, delivered_after_ms: Option<i64>) {
        if let Some(counter) = self
            .attempts_by_number
            .get((number as usize).saturating_sub(1))
        {
            counter.fetch_add(1, Relaxed);
        }
        if let Some(ms) = delivered_after_ms {
            let ms = ms.max(0) as u64;
            self.latency_sum_ms.fetch_add(ms, Relaxed);
            self.latency_count.fetch_add(1, Relaxed);
            for (bound, bucket) in LATENCY_BUCKETS_MS.iter().zip(&self.latency_buckets) {
                if ms <= *bound {
                    bucket.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Count a gateway validation.
    pub fn record_validation(&self, valid: bool) {
        let counter = if valid {
            &self.validations_valid
        } else {
            &self.validations_invalid
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition, with the queue depth read by the caller.
    pub fn render(&self, due: i64, scheduled: i64) -> String {
        let mut out = String::new();
        let counters = [
            (
                "ss3_events_ingested_total",
                "Domain events accepted",
                &self.events_ingested,
            ),
            (
                "ss3_events_duplicate_total",
                "Domain events ignored as duplicates",
                &self.events_duplicate,
            ),
            (
                "ss3_messages_quarantined_total",
                "Kafka messages quarantined",
                &self.messages_quarantined,
            ),
            (
                "ss3_attempts_delivered_total",
                "Delivery attempts answered 2xx",
                &self.attempts_delivered,
            ),
            (
                "ss3_attempts_failed_total",
                "Delivery attempts that failed",
                &self.attempts_failed,
            ),
            (
                "ss3_dead_lettered_total",
                "Deliveries dead-lettered",
                &self.dead_lettered,
            ),
            (
                "ss3_jobs_stale_total",
                "Jobs whose delivery had moved on",
                &self.jobs_stale,
            ),
            (
                "ss3_deliveries_cancelled_total",
                "Deliveries cancelled by an inactive subscription",
                &self.cancelled,
            ),
            (
                "ss3_attempts_deferred_total",
                "Attempts deferred because a secret was unavailable",
                &self.deferred,
            ),
            (
                "ss3_job_errors_total",
                "Jobs that hit an infrastructure error",
                &self.job_errors,
            ),
            (
                "ss3_connector_synced_total",
                "Connector sync attempts that succeeded",
                &self.connector_synced,
            ),
            (
                "ss3_connector_failed_total",
                "Connector sync attempts that failed",
                &self.connector_failed,
            ),
            (
                "ss3_connector_dead_lettered_total",
                "Connector jobs dead-lettered",
                &self.connector_dead_lettered,
            ),
            (
                "ss3_connector_polls_total",
                "Connector polls run",
                &self.connector_polls,
            ),
            (
                "ss3_connector_polled_records_total",
                "Records found by connector polls",
                &self.connector_polled_records,
            ),
            (
                "ss3_events_published_total",
                "Events published to Kafka",
                &self.published,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ss3_attempts_total Delivery attempts by number in the schedule\n# TYPE ss3_attempts_total counter"
        );
        for (i, c) in self.attempts_by_number.iter().enumerate() {
            let _ = writeln!(
                out,
                "ss3_attempts_total{{attempt=\"{}\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ss3_delivery_latency_ms Event creation to 2xx, delivered attempts\n# TYPE ss3_delivery_latency_ms histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS_MS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "ss3_delivery_latency_ms_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "ss3_delivery_latency_ms_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "ss3_delivery_latency_ms_sum {}\nss3_delivery_latency_ms_count {count}",
            self.latency_sum_ms.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP ss3_queue_jobs Jobs waiting in the queue\n# TYPE ss3_queue_jobs gauge"
        );
        let _ = writeln!(
            out,
            "ss3_queue_jobs{{state=\"due\"}} {due}\nss3_queue_jobs{{state=\"scheduled\"}} {scheduled}"
        );
        out
    }
}
