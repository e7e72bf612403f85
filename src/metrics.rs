//! Process metrics on `prometheus-client`, exposed at `/metrics` in the Prometheus/OpenMetrics text format.
//!
//! Each [`Metrics`] owns its registry (no global recorder), so several applications in one process (the integration
//! tests) count apart. Counters end in `_total`, durations are histograms in seconds, and job outcomes are one family
//! labelled by job kind, connector type (when known) and outcome.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use jobs::attempt::{DeferCause, Handled};
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use workflows::DeliveryStatus;

use crate::credentials::CacheStats;

/// Upper bounds (seconds) of the delivery latency histogram: 5 ms to an hour, the retry schedule's span.
pub const LATENCY_BUCKETS_SECS: [f64; 10] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0, 3_600.0,
];

/// The ingest and outbox counters' names and help, in the order `register_events` lists them.
const EVENT_COUNTERS: [(&str, &str); 6] = [
    ("events_ingested", "Domain events accepted"),
    ("events_duplicate", "Domain events ignored as duplicates"),
    (
        "jobs_handed_off",
        "Jobs ingest handed to its process's worker (no claim)",
    ),
    ("messages_quarantined", "Kafka messages quarantined"),
    ("events_published", "Events published to Kafka"),
    (
        "connector_polled_records",
        "Records found by connector polls (before deduplication)",
    ),
];

/// Which kind of outbound job an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A webhook delivery attempt.
    Webhook,
    /// A connector sync attempt or poll.
    Connector,
}

/// Why a job was deferred without counting an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeferReason {
    /// The signing secret or connector credentials could not be read.
    SecretUnavailable,
    /// The connector's rate limit was exhausted.
    RateLimited,
}

impl From<DeferCause> for DeferReason {
    fn from(cause: DeferCause) -> Self {
        match cause {
            DeferCause::SecretsUnavailable => Self::SecretUnavailable,
            DeferCause::RateLimited => Self::RateLimited,
        }
    }
}

/// What a job came to, as counted by `ss3_jobs_total`'s `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOutcome {
    /// The attempt succeeded (2xx, or a sync with nothing left to do).
    Delivered,
    /// The attempt failed and a retry is scheduled.
    Failed,
    /// The attempt failed for the last time: dead-lettered.
    DeadLettered,
    /// The job no longer applied (superseded, re-triggered or unknown): nothing was sent.
    Stale,
    /// The subscription or connector is inactive: retries stopped.
    Cancelled,
    /// Re-queued without counting an attempt, for this reason.
    Deferred(DeferReason),
    /// Ran before its due time and was re-queued for it.
    NotYetDue,
    /// A connector poll ran.
    Polled,
    /// A connector poll failed (the next one is scheduled either way).
    PollFailed,
    /// The job hit an infrastructure error.
    Error,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
            Self::Stale => "stale",
            Self::Cancelled => "cancelled",
            Self::Deferred(DeferReason::SecretUnavailable) => "deferred_secret_unavailable",
            Self::Deferred(DeferReason::RateLimited) => "deferred_rate_limited",
            Self::NotYetDue => "not_yet_due",
            Self::Polled => "polled",
            Self::PollFailed => "poll_failed",
            Self::Error => "error",
        }
    }

    /// The outcome of an attempt that ended with `status`.
    fn of_attempt(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::DeadLettered => Self::DeadLettered,
            _ => Self::Failed,
        }
    }
}

/// Labels of `ss3_jobs_total`: `kind`, `connector` (only when known) and `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct JobLabels {
    kind: JobKind,
    connector: Option<String>,
    outcome: JobOutcome,
}

impl EncodeLabelSet for JobLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let kind = match self.kind {
            JobKind::Webhook => "webhook",
            JobKind::Connector => "connector",
        };
        ("kind", kind).encode(encoder.encode_label())?;
        if let Some(connector) = &self.connector {
            ("connector", connector.as_str()).encode(encoder.encode_label())?;
        }
        ("outcome", self.outcome.label()).encode(encoder.encode_label())
    }
}

/// A single-label set, such as `outcome="hit"` or `attempt="1"`.
type Label = [(&'static str, String); 1];

fn label(key: &'static str, value: impl ToString) -> Label {
    [(key, value.to_string())]
}

/// The metrics of one application, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Domain events accepted (Kafka and HTTP).
    pub events_ingested: Counter,
    /// Domain events ignored as duplicates of one already stored.
    pub events_duplicate: Counter,
    /// Jobs the ingest handed to this process's worker as it queued them (no claim).
    pub jobs_handed_off: Counter,
    /// Kafka messages quarantined instead of ingested.
    pub messages_quarantined: Counter,
    /// Events the outbox relay published to Kafka.
    pub published: Counter,
    jobs: Family<JobLabels, Counter>,
    attempts_by_number: Family<Label, Counter>,
    delivery_latency: Histogram,
    connector_polled_records: Counter,
    validations: Family<Label, Counter>,
    validation_cache: Family<Label, Counter>,
    queue_jobs: Family<Label, Gauge>,
    lanes_slow: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its `ss3_` name.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ss3");
        let m = Self::unregistered();
        m.register_events(&mut registry);
        m.register_jobs(&mut registry);
        m.register_gateway(&mut registry);
        m.create_known_series();
        Self { registry, ..m }
    }

    /// Ingest and outbox counters.
    fn register_events(&self, r: &mut Registry) {
        let counters = [
            &self.events_ingested,
            &self.events_duplicate,
            &self.jobs_handed_off,
            &self.messages_quarantined,
            &self.published,
            &self.connector_polled_records,
        ];
        for ((name, help), counter) in EVENT_COUNTERS.into_iter().zip(counters) {
            r.register(name, help, counter.clone());
        }
    }

    /// Job outcomes, attempts, delivery latency and the queue.
    fn register_jobs(&self, r: &mut Registry) {
        r.register(
            "jobs",
            "Outbound jobs handled, by kind, connector type (when known) and outcome",
            self.jobs.clone(),
        );
        r.register(
            "attempts",
            "Delivery attempts by number in the schedule",
            self.attempts_by_number.clone(),
        );
        r.register_with_unit(
            "delivery_latency",
            "Event creation to 2xx, delivered webhook attempts",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        r.register(
            "queue_jobs",
            "Jobs waiting in the queue",
            self.queue_jobs.clone(),
        );
        let slow = "Lanes (subscriptions, connectors) held to one attempt in flight: their receiver is slow";
        r.register("lanes_slow", slow, self.lanes_slow.clone());
    }

    /// Credential validations at the gateway.
    fn register_gateway(&self, r: &mut Registry) {
        r.register(
            "validations",
            "Gateway credential validations by answer",
            self.validations.clone(),
        );
        r.register(
            "validation_cache",
            "Credential validations by cache outcome",
            self.validation_cache.clone(),
        );
    }

    /// Every series whose labels are known in advance, at zero: a scrape shows them before their first event.
    fn create_known_series(&self) {
        use JobOutcome as O;
        let attempt = [O::Delivered, O::Failed, O::DeadLettered];
        let common = [O::Stale, O::Cancelled, O::NotYetDue];
        let webhook = [O::Deferred(DeferReason::SecretUnavailable), O::Error];
        let connector = [
            O::Deferred(DeferReason::SecretUnavailable),
            O::Deferred(DeferReason::RateLimited),
            O::Polled,
            O::PollFailed,
        ];
        let kinds = attempt
            .iter()
            .chain(&common)
            .chain(&webhook)
            .map(|o| (JobKind::Webhook, *o));
        let kinds = kinds.chain(
            attempt
                .iter()
                .chain(&common)
                .chain(&connector)
                .map(|o| (JobKind::Connector, *o)),
        );
        for (kind, outcome) in kinds {
            let labels = JobLabels {
                kind,
                connector: None,
                outcome,
            };
            drop(self.jobs.get_or_create(&labels));
        }
        for number in 1..=workflows::retry::MAX_ATTEMPTS {
            drop(
                self.attempts_by_number
                    .get_or_create(&label("attempt", number)),
            );
        }
        for answer in ["valid", "invalid"] {
            drop(self.validations.get_or_create(&label("outcome", answer)));
        }
    }

    fn unregistered() -> Self {
        Self {
            registry: Registry::default(),
            events_ingested: Counter::default(),
            events_duplicate: Counter::default(),
            jobs_handed_off: Counter::default(),
            messages_quarantined: Counter::default(),
            published: Counter::default(),
            jobs: Family::default(),
            attempts_by_number: Family::default(),
            delivery_latency: Histogram::new(LATENCY_BUCKETS_SECS),
            connector_polled_records: Counter::default(),
            validations: Family::default(),
            validation_cache: Family::default(),
            queue_jobs: Family::default(),
            lanes_slow: Gauge::default(),
        }
    }

    /// Count one job of `kind` (of connector type `connector`, when known) that came to `outcome`.
    pub fn record_job(&self, kind: JobKind, connector: Option<&str>, outcome: JobOutcome) {
        let labels = JobLabels {
            kind,
            connector: connector.map(str::to_owned),
            outcome,
        };
        self.jobs.get_or_create(&labels).inc();
    }

    /// Count a handled webhook job (`Err`: it hit an infrastructure error).
    pub fn record_handled(&self, handled: Result<&Handled, &String>) {
        let outcome = match handled {
            Ok(handled) => self.outcome(handled),
            Err(_) => JobOutcome::Error,
        };
        self.record_job(JobKind::Webhook, None, outcome);
    }

    /// Count a handled connector job (sync attempt or poll).
    pub fn record_connector(&self, handled: &Handled) {
        self.record_connector_of(None, handled);
    }

    /// [`Self::record_connector`], labelled with the connector type (`amazon`, `ebay`, `google_shopping`).
    pub fn record_connector_of(&self, connector: Option<&str>, handled: &Handled) {
        let outcome = self.outcome(handled);
        self.record_job(JobKind::Connector, connector, outcome);
    }

    /// What a handled job came to (counting a poll's records on the way).
    fn outcome(&self, handled: &Handled) -> JobOutcome {
        match handled {
            Handled::Attempted { status } => JobOutcome::of_attempt(*status),
            Handled::Polled { published, failed } => {
                self.connector_polled_records.inc_by(*published as u64);
                if *failed {
                    JobOutcome::PollFailed
                } else {
                    JobOutcome::Polled
                }
            }
            Handled::Stale => JobOutcome::Stale,
            Handled::Cancelled => JobOutcome::Cancelled,
            Handled::Deferred(cause) => JobOutcome::Deferred((*cause).into()),
            Handled::NotYetDue => JobOutcome::NotYetDue,
        }
    }

    /// Count a webhook attempt (1-based number) and, when delivered, how long after the event was created (ms).
    pub fn record_attempt(&self, number: u32, delivered_after_ms: Option<i64>) {
        self.attempts_by_number
            .get_or_create(&label("attempt", number))
            .inc();
        if let Some(ms) = delivered_after_ms {
            self.delivery_latency.observe(ms.max(0) as f64 / 1_000.0);
        }
    }

    /// Count a gateway validation.
    pub fn record_validation(&self, valid: bool) {
        let answer = if valid { "valid" } else { "invalid" };
        self.validations
            .get_or_create(&label("outcome", answer))
            .inc();
    }

    /// The text exposition, with the queue depth, the slow lanes and the validation cache's counters read by the
    /// caller.
    pub fn render(&self, (due, scheduled, slow): (i64, i64, i64), cache: CacheStats) -> String {
        self.lanes_slow.set(slow);
        self.queue_jobs
            .get_or_create(&label("state", "due"))
            .set(due);
        self.queue_jobs
            .get_or_create(&label("state", "scheduled"))
            .set(scheduled);
        // The cache counts for itself; these mirror its monotonic counters at scrape time.
        for (outcome, value) in [("hit", cache.hits), ("miss", cache.misses)] {
            self.validation_cache
                .get_or_create(&label("outcome", outcome))
                .inner()
                .store(value, Relaxed);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The worker counts through this port (`jobs` does not depend on the service crate).
impl jobs::worker::JobMetrics for Metrics {
    fn record_handled(&self, handled: Result<&Handled, &String>) {
        Metrics::record_handled(self, handled);
    }

    fn record_connector(&self, handled: &Handled) {
        Metrics::record_connector(self, handled);
    }

    fn record_attempt(&self, number: u32, delivered_after_ms: Option<i64>) {
        Metrics::record_attempt(self, number, delivered_after_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches: counters without `_total`, latency in ms, or a connector's rate-limit deferral counted as "secret unavailable".
    #[test]
    fn renders_labelled_counters_and_a_seconds_histogram() {
        let m = Metrics::new();
        m.events_ingested.inc();
        m.record_attempt(1, Some(1_500));
        m.record_connector(&Handled::Deferred(DeferCause::RateLimited));
        m.record_handled(Ok(&Handled::Deferred(DeferCause::SecretsUnavailable)));
        m.record_job(JobKind::Connector, Some("ebay"), JobOutcome::Delivered);
        let text = m.render((3, 4, 2), CacheStats { hits: 5, misses: 6 });
        for line in [
            "ss3_events_ingested_total 1",
            "ss3_attempts_total{attempt=\"1\"} 1",
            "ss3_delivery_latency_seconds_count 1",
            "ss3_delivery_latency_seconds_bucket{le=\"10.0\"} 1",
            "ss3_jobs_total{kind=\"connector\",outcome=\"deferred_rate_limited\"} 1",
            "ss3_jobs_total{kind=\"webhook\",outcome=\"deferred_secret_unavailable\"} 1",
            "ss3_jobs_total{kind=\"connector\",connector=\"ebay\",outcome=\"delivered\"} 1",
            "ss3_validation_cache_total{outcome=\"hit\"} 5",
            "ss3_queue_jobs{state=\"scheduled\"} 4",
            "ss3_lanes_slow 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
