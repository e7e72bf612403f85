//! The tables of the configuration that tune the service's own work: `[http]`, `[delivery]`, `[worker]`,
//! `[credentials]` and `[connectors]`.

use serde::Deserialize;

use super::Secret;

/// `[admin]`: the admin panel under `/admin`.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminConfig {
    /// A session ends this long after sign-in (or at sign-out, or when its API key stops being valid).
    pub session_ttl_secs: u64,
}

/// `[http]`: what a client may cost the API's HTTP server, and how `POST /events` writes.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// `POST /events` writers: concurrent requests share their transactions, this many writing at once.
    pub ingest_writers: usize,
    /// Most events one `POST /events` transaction carries.
    pub ingest_batch: usize,
    /// Largest request body of every route but `POST /events` (which takes `kafka.max_message_bytes`).
    pub max_body_bytes: usize,
    /// Time to send a request's header block (and, on a kept-alive connection, to start the next request).
    pub header_read_timeout_ms: u64,
    /// Time to send a request's body, counted from the service's first read of it.
    pub body_read_timeout_ms: u64,
}

/// `[connectors]`: marketplace connectors and the marketplace APIs they call.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorsConfig {
    /// Connect timeout to channel APIs.
    pub connect_timeout_ms: u64,
    /// Total time of one channel request.
    pub timeout_ms: u64,
    /// A `429 Retry-After` up to this long is waited out in place; longer fails the attempt with that delay.
    pub max_inline_wait_ms: u64,
    /// Poll interval of a new config that polls and does not set one.
    pub default_poll_interval_secs: u32,
    /// Hosts channel endpoints may resolve to in production mode even though they are not public.
    pub allowed_private_hosts: Vec<String>,
    /// `[connectors.amazon]`: SP-API and LWA URLs.
    pub amazon: ::connectors::amazon::Endpoints,
    /// `[connectors.ebay]`: API and token URLs.
    pub ebay: ::connectors::ebay::Endpoints,
    /// `[connectors.google_shopping]`: Merchant API and token URLs.
    pub google_shopping: ::connectors::google::Endpoints,
}

impl ConnectorsConfig {
    /// Every channel endpoint URL, with its config key.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        let (a, e, g) = (&self.amazon, &self.ebay, &self.google_shopping);
        vec![
            ("connectors.amazon.lwa_endpoint", a.lwa_endpoint.as_str()),
            ("connectors.amazon.sp_api_na", a.sp_api_na.as_str()),
            ("connectors.amazon.sp_api_eu", a.sp_api_eu.as_str()),
            ("connectors.amazon.sp_api_fe", a.sp_api_fe.as_str()),
            ("connectors.ebay.api", e.api.as_str()),
            ("connectors.ebay.token_url", e.token_url.as_str()),
            ("connectors.google_shopping.api", g.api.as_str()),
            ("connectors.google_shopping.token_url", g.token_url.as_str()),
        ]
    }
}

/// `[credentials]`: API keys, OAuth access tokens and the cost of checking them.
#[derive(Debug, Clone, Deserialize)]
pub struct CredentialsConfig {
    /// bcrypt cost of new secrets (4–31).
    pub bcrypt_cost: u32,
    /// How long a successful validation is reused before it is checked again.
    pub cache_ttl_secs: u64,
    /// Most validations cached; beyond it the least useful entries are evicted one by one.
    pub cache_max_entries: usize,
    /// `last_used_at` is written at most once per credential per this many seconds.
    pub last_used_precision_secs: u64,
    /// How often recorded `last_used_at` times are flushed to Postgres.
    pub last_used_flush_secs: u64,
    /// Lifetime of an issued OAuth access token.
    pub access_token_ttl_secs: u64,
    /// Token the gateway must present to `/credentials/validate` (empty: none).
    pub gateway_token: Secret,
    /// bcrypt hashes computed at once; 0: the machine's available parallelism.
    pub verify_concurrency: usize,
    /// Checks that may wait for a turn beyond those running; more are answered 503 at once.
    pub verify_queue: usize,
    /// Longest wait for a turn before a check is answered 503.
    pub verify_wait_ms: u64,
    /// Nice value (0–19) of hashing threads: under load, the rest of the process gets the CPU first.
    pub verify_nice: i32,
    /// A failed check (unknown, wrong, inactive or expired credential) is answered no sooner than this after it
    /// arrived.
    pub failure_delay_ms: u64,
    /// A lookup of an uncached key or token waits this long for others, then one statement answers them all.
    pub lookup_batch_ms: u64,
}

/// `[delivery]`: outgoing webhook requests.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryConfig {
    /// Time to connect to a webhook target.
    pub connect_timeout_ms: u64,
    /// Total time of one webhook request, response included.
    pub timeout_ms: u64,
    /// Bytes of a target's response body kept with the attempt.
    pub response_body_limit: usize,
    /// Hosts webhook targets may resolve to in production mode even though they are not public.
    pub allowed_private_hosts: Vec<String>,
}

/// `[lanes]`: fair delivery. Each subscription (each connector) is a lane with a bounded number of attempts in
/// flight across every worker process; lanes with due work take turns.
#[derive(Debug, Clone, Deserialize)]
pub struct LanesConfig {
    /// Attempts in flight per lane when its subscription sets no `maxInFlight`.
    pub default_in_flight: u32,
    /// The most a subscription may set as its `maxInFlight`.
    pub max_in_flight: u32,
    /// An attempt answered later than this (or timing out) counts as slow.
    pub slow_ms: u64,
    /// Slow attempts in a row after which a lane gets one attempt in flight at a time, until one is answered in
    /// time again.
    pub slow_after: u32,
}

impl LanesConfig {
    /// The limits workers claim by and the API judges lanes by.
    pub fn limits(&self) -> workflows::lanes::LaneLimits {
        workflows::lanes::LaneLimits {
            default_in_flight: self.default_in_flight,
            max_in_flight: self.max_in_flight,
            slow_after: self.slow_after,
        }
    }
}

/// `[auto_disable]`: subscriptions that only fail are deactivated (see `db::auto_disable`).
#[derive(Debug, Clone, Deserialize)]
pub struct AutoDisableConfig {
    /// Days every attempt must have failed (0: never disable).
    pub after_days: u32,
    /// Dead letters needed within those days.
    pub min_dead_letters: u32,
    /// Seconds between checks.
    pub check_secs: u64,
}

impl AutoDisableConfig {
    /// The policy, `None` when turned off.
    pub fn policy(&self) -> Option<crate::db::auto_disable::Policy> {
        (self.after_days > 0).then(|| crate::db::auto_disable::Policy {
            after: chrono::TimeDelta::days(i64::from(self.after_days)),
            min_dead_letters: i64::from(self.min_dead_letters),
        })
    }
}

/// `[retention]`: how long rows are kept (see `db::retention`).
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionConfig {
    /// Delivery log and attempts, connector jobs and sync log, quarantined messages (matches the 30-day statistics).
    pub log_days: u32,
    /// Ingested events: their ids are the dedupe window of event ids (an event carrying a body its deliveries or
    /// connector jobs send stays as long as they do).
    pub ingested_events_days: u32,
    /// Hourly delivery statistics (the longest window the statistics serve is 90 days).
    pub stats_days: u32,
    /// How often a worker runs a pass (one process at a time).
    pub interval_secs: u64,
    /// Rows removed per statement.
    pub batch: u32,
}

impl RetentionConfig {
    /// The horizons of a pass.
    pub fn retention(&self) -> crate::db::retention::Retention {
        let days = |d: u32| std::time::Duration::from_secs(u64::from(d) * 86_400);
        crate::db::retention::Retention {
            log: days(self.log_days),
            ingested_events: days(self.ingested_events_days),
            stats: days(self.stats_days),
            batch: i64::from(self.batch),
        }
    }
}

/// `[worker]`: the job worker, its leases and its housekeeping.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Jobs claimed per fetch from the queue.
    pub batch_size: usize,
    /// How often a worker looks again while jobs are due that it could not claim (their lanes full).
    pub poll_interval_ms: u64,
    /// The longest a worker with nothing due waits before looking again (the backstop to notifications).
    pub idle_poll_ms: u64,
    /// How often the worker records that it is alive.
    pub heartbeat_interval_secs: u64,
    /// A claimed job whose lease was not renewed for this long is re-queued.
    pub lease_ms: u64,
    /// How often a worker renews the leases of the jobs it holds.
    pub lease_renew_ms: u64,
    /// How often each worker re-queues jobs whose lease expired.
    pub lease_rescue_ms: u64,
    /// Worker name (empty: generated from host, pid and a random suffix).
    pub name: String,
    /// Scale of real waits between attempts (tests shrink the 1m/5m/30m/2h schedule; 1 in production).
    pub time_scale: f64,
    /// Wait before retrying a job whose secret could not be read.
    pub secret_retry_secs: u64,
    /// How often the outbox relay looks for unpublished events.
    pub outbox_poll_ms: u64,
    /// How often finished jobs are swept from apalis.jobs.
    pub sweep_interval_secs: u64,
    /// How long finished jobs stay in apalis.jobs (0: the acknowledgement deletes them).
    pub job_retention_secs: u64,
    /// Whether the sweep vacuums tables with many dead rows: `auto` (only while the server's autovacuum is off),
    /// `always`, `never`.
    pub vacuum: jobs::worker::VacuumMode,
    /// Dead rows (plus 5 % of the live ones) past which the sweep vacuums a table.
    pub vacuum_dead_rows: i64,
    /// Whether this process's ingest hands the jobs it queues to this process's worker (when both roles run here)
    /// instead of waking a worker to claim them.
    pub handoff: bool,
}

/// `[telemetry]`: OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when an endpoint is set.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver, as `OTEL_EXPORTER_OTLP_ENDPOINT` (spans go to `<it>/v1/traces`); empty:
    /// traces are not exported.
    pub otlp_endpoint: String,
    /// The spans' `service.name`.
    pub service_name: String,
    /// Share of the traces this service starts that are sampled, in [0, 1]; a continued trace follows its parent's
    /// decision.
    pub sample_ratio: f64,
    /// Finished spans are sent in batches at least this often.
    pub export_interval_ms: u64,
}

impl TelemetryConfig {
    /// Whether traces are exported.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }
}
