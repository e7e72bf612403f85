//! Range checks of a loaded configuration, each naming the key at fault.

use super::{Config, ConfigError, MIN_ROLE_CONNECTIONS};

/// The refusal of `key`, saying what is wrong with its value.
fn invalid(key: &'static str, problem: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem: problem.to_owned(),
    })
}

/// `Err` naming `key` with `problem` when `bad`.
fn check(bad: bool, key: &'static str, problem: &str) -> Result<(), ConfigError> {
    if bad { invalid(key, problem) } else { Ok(()) }
}

impl Config {
    /// Check ranges, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_worker()?;
        self.validate_credentials()?;
        self.validate_http()?;
        self.validate_connections()?;
        self.validate_kafka()?;
        self.validate_telemetry()?;
        self.validate_endpoints()
    }

    fn validate_telemetry(&self) -> Result<(), ConfigError> {
        let t = &self.telemetry;
        if t.enabled() {
            let scheme = url::Url::parse(t.otlp_endpoint.trim()).map(|u| u.scheme().to_owned());
            check(
                !matches!(scheme.as_deref(), Ok("http" | "https")),
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL (the OTLP/HTTP receiver's base)",
            )?;
        }
        check(
            !(0.0..=1.0).contains(&t.sample_ratio),
            "telemetry.sample_ratio",
            "must be in [0, 1]",
        )?;
        check(
            t.export_interval_ms == 0,
            "telemetry.export_interval_ms",
            "must be at least 1",
        )
    }

    fn validate_worker(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        check(
            w.concurrency == 0,
            "worker.concurrency",
            "must be at least 1",
        )?;
        check(w.batch_size == 0, "worker.batch_size", "must be at least 1")?;
        check(
            w.lease_renew_ms == 0 || w.lease_renew_ms * 2 > w.lease_ms,
            "worker.lease_renew_ms",
            "must be at least 1 and at most half of worker.lease_ms",
        )?;
        check(
            w.lease_rescue_ms == 0,
            "worker.lease_rescue_ms",
            "must be at least 1",
        )?;
        check(
            !(w.time_scale > 0.0 && w.time_scale <= 1.0),
            "worker.time_scale",
            "must be in (0, 1]",
        )?;
        check(
            w.vacuum_dead_rows < 0,
            "worker.vacuum_dead_rows",
            "must be at least 0",
        )?;
        self.validate_lanes()
    }

    fn validate_lanes(&self) -> Result<(), ConfigError> {
        let l = &self.lanes;
        check(
            l.max_in_flight == 0,
            "lanes.max_in_flight",
            "must be at least 1",
        )?;
        check(
            l.default_in_flight == 0 || l.default_in_flight > l.max_in_flight,
            "lanes.default_in_flight",
            "must be at least 1 and at most lanes.max_in_flight",
        )?;
        check(l.slow_after == 0, "lanes.slow_after", "must be at least 1")?;
        let r = &self.retention;
        check(r.log_days == 0, "retention.log_days", "must be at least 1")?;
        check(r.batch == 0, "retention.batch", "must be at least 1")?;
        check(
            r.interval_secs == 0,
            "retention.interval_secs",
            "must be at least 1",
        )
    }

    fn validate_credentials(&self) -> Result<(), ConfigError> {
        let c = &self.credentials;
        check(
            !(4..=31).contains(&c.bcrypt_cost),
            "credentials.bcrypt_cost",
            "must be between 4 and 31",
        )?;
        check(
            !(0..=19).contains(&c.verify_nice),
            "credentials.verify_nice",
            "must be between 0 and 19",
        )?;
        check(
            c.verify_wait_ms == 0,
            "credentials.verify_wait_ms",
            "must be at least 1",
        )?;
        check(
            c.failure_delay_ms > 10_000,
            "credentials.failure_delay_ms",
            "must be at most 10000",
        )
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        check(
            h.max_body_bytes == 0,
            "http.max_body_bytes",
            "must be at least 1",
        )?;
        check(
            h.header_read_timeout_ms == 0,
            "http.header_read_timeout_ms",
            "must be at least 1",
        )?;
        check(
            h.ingest_writers == 0,
            "http.ingest_writers",
            "must be at least 1",
        )?;
        check(
            h.ingest_batch == 0,
            "http.ingest_batch",
            "must be at least 1",
        )?;
        check(
            h.body_read_timeout_ms == 0,
            "http.body_read_timeout_ms",
            "must be at least 1",
        )
    }

    fn validate_connections(&self) -> Result<(), ConfigError> {
        let p = &self.pools;
        check(
            p.api_percent + p.ingest_percent + p.worker_percent != 100,
            "pools.api_percent",
            "pools.api_percent + ingest_percent + worker_percent must be 100",
        )?;
        check(
            self.max_db_connections < 3 * MIN_ROLE_CONNECTIONS,
            "max_db_connections",
            "must be at least 6 (two connections per role)",
        )?;
        check(
            !self.database_url.expose().starts_with("postgres"),
            "database_url",
            "must be a postgres:// URL",
        )
    }

    fn validate_kafka(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        check(k.batch_max == 0, "kafka.batch_max", "must be at least 1")?;
        check(
            k.enabled() && k.topic_regex.trim().is_empty() && k.topics.is_empty(),
            "kafka.topic_regex",
            "set a regex or kafka.topics when kafka.brokers is set",
        )?;
        check(
            self.vault.refresh_secs == 0,
            "vault.refresh_secs",
            "must be at least 1",
        )
    }

    fn validate_endpoints(&self) -> Result<(), ConfigError> {
        for (key, url) in self.connectors.urls() {
            let parsed = url::Url::parse(url).ok();
            if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return invalid(key, "must be an absolute http(s) URL");
            }
        }
        Ok(())
    }
}
