//! `integration-service bench`: measured figures for docs/benchmarks.md (never assertions).

mod connectors;
mod credentials;
mod flood;
mod webhooks;
mod workers;

use crate::config::Config;

/// Arguments of the bench command.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Suites to run: webhooks, credentials, workers, connectors, flood (against a running service at --api).
    #[arg(long, value_delimiter = ',', default_value = "webhooks")]
    pub suite: Vec<String>,
    /// Webhooks: events per throughput run.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Webhooks and connectors: fan-outs to measure (webhook subscriptions matching every event).
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    pub fanout: Vec<usize>,
    /// Webhooks: ingest paths (kafka, http).
    #[arg(long, value_delimiter = ',', default_value = "kafka,http")]
    pub via: Vec<String>,
    /// Webhooks: event rate of the latency run (events/s).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Webhooks: length of the latency run.
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
    /// Credentials: validations of one key (cached path).
    #[arg(long, default_value_t = 100_000)]
    pub validations: usize,
    /// Credentials: distinct keys validated once each (bcrypt path).
    #[arg(long, default_value_t = 200)]
    pub distinct_keys: usize,
    /// Workers: deliveries queued before the worker processes start.
    #[arg(long, default_value_t = 20_000)]
    pub backlog: usize,
    /// Connectors: the fake channel's rate limit set on the config (calls/s); 0 lifts it to measure our side.
    #[arg(long, default_value_t = 0.0)]
    pub channel_rate: f64,
    /// Connectors: Amazon configs every event fans out to (each has its own rate-limit row).
    #[arg(long, default_value_t = 1)]
    pub configs: usize,
    /// Credentials: requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Credentials and flood: connections sending random API keys back to back (0 skips the credentials flood).
    #[arg(long, default_value_t = 1000)]
    pub flood_connections: usize,
    /// Credentials and flood: length of the flood.
    #[arg(long, default_value_t = 20)]
    pub flood_secs: u64,
    /// Flood: base URL of a running service (`serve`) to flood from this process.
    #[arg(long)]
    pub api: Option<String>,
    /// Flood: operator token of that service (to issue the probe key).
    #[arg(long, default_value = "")]
    pub api_token: String,
}

/// Run the selected suites.
pub async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    for suite in &args.suite {
        match suite.as_str() {
            "webhooks" => webhooks::run(config.clone(), args.clone()).await?,
            "credentials" => credentials::run(config.clone(), args.clone()).await?,
            "workers" => workers::run(config.clone(), args.clone()).await?,
            "connectors" => connectors::run(config.clone(), args.clone()).await?,
            "flood" => flood::run(args.clone()).await?,
            other => anyhow::bail!(
                "unknown suite {other:?}: use webhooks, credentials, workers, connectors, flood"
            ),
        }
    }
    Ok(())
}

/// The `p` quantile of sorted microsecond samples, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}
