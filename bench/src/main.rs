//! `ss3-bench`: measured figures for docs/benchmarks.md (never assertions).
//!
//! Its own binary, not a subcommand of `integration-service`: the suites create and drop databases on the configured
//! server, which a production binary must never be able to do by mistake.

mod claim;
mod connectors;
mod credentials;
mod flood;
mod send;
mod webhooks;
mod workers;

use std::path::PathBuf;

use clap::Parser;
use integration_service::config::Config;

/// Command line of `ss3-bench`: the service's configuration plus the suites and their sizes.
#[derive(Parser)]
#[command(
    version,
    about = "Measure integration-service throughput and latency (docs/benchmarks.md)"
)]
struct Cli {
    /// Optional TOML file layered over the embedded defaults (config.default.toml), as for `integration-service`.
    #[arg(long, env = "SS3_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: BenchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    run(config, cli.args).await
}

/// Logs to stderr (`RUST_LOG`, default as `integration-service serve`), so the figures on stdout stay clean.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The suites to run and their sizes.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Suites to run: webhooks, credentials, workers, connectors, claim, flood (against a running service at
    /// --api).
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
    /// Workers: the `integration-service` binary whose `serve --roles worker` processes drain the backlog
    /// (default: the one next to this binary, as cargo builds both into the same directory).
    #[arg(long, env = "SS3_SERVICE_BIN")]
    pub service_bin: Option<PathBuf>,
    /// Credentials: requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Credentials and flood: connections sending random API keys back to back (0 skips the credentials flood).
    #[arg(long, default_value_t = 1000)]
    pub flood_connections: usize,
    /// Credentials and flood: length of the flood.
    #[arg(long, default_value_t = 20)]
    pub flood_secs: u64,
    /// Claim: lane counts to measure, one fresh database each (the due jobs below are split evenly over them).
    #[arg(long, value_delimiter = ',', default_value = "10000,10")]
    pub claim_lanes: Vec<usize>,
    /// Claim: due jobs in all, split evenly over the lanes (10 per lane with 10,000 lanes).
    #[arg(long, default_value_t = 100_000)]
    pub claim_due: usize,
    /// Claim: jobs scheduled hours ahead (retries), spread over the same lanes.
    #[arg(long, default_value_t = 200_000)]
    pub claim_later: usize,
    /// Claim: put the jobs scheduled later in this many lanes of their own, which hold nothing due (endpoints whose
    /// retries are all waiting), instead of in the due lanes; 0 keeps them in the due lanes.
    #[arg(long, default_value_t = 0)]
    pub claim_later_lanes: usize,
    /// Claim: timed claims per lane count.
    #[arg(long, default_value_t = 200)]
    pub claims: usize,
    /// Claim: jobs asked for per claim (the worker's batch_size).
    #[arg(long, default_value_t = 128)]
    pub claim_limit: usize,
    /// Claim: also print `EXPLAIN (ANALYZE, BUFFERS)` of the claim's two statements.
    #[arg(long)]
    pub explain: bool,
    /// Credentials and flood: where the cached-key probe runs (`own`: a thread and runtime apart from the flood's).
    #[arg(long, value_enum, default_value = "own")]
    pub probe_runtime: flood::ProbeRuntime,
    /// Flood: base URL of a running service (`serve`) to flood from this process.
    #[arg(long)]
    pub api: Option<String>,
    /// Flood: operator token of that service (to issue the probe key).
    #[arg(long, default_value = "")]
    pub api_token: String,
}

/// Run the selected suites.
async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    for suite in &args.suite {
        match suite.as_str() {
            "webhooks" => webhooks::run(config.clone(), args.clone()).await?,
            "credentials" => credentials::run(config.clone(), args.clone()).await?,
            "workers" => workers::run(config.clone(), args.clone()).await?,
            "connectors" => connectors::run(config.clone(), args.clone()).await?,
            "claim" => claim::run(config.clone(), args.clone()).await?,
            "flood" => flood::run(args.clone()).await?,
            other => anyhow::bail!(
                "unknown suite {other:?}: use webhooks, credentials, workers, connectors, claim, flood"
            ),
        }
    }
    Ok(())
}

/// `POST {api}{path}` as the operator (`bench-token`) acting on store `bench`.
fn post_as_bench(http: &reqwest::Client, api: &str, path: &str) -> reqwest::RequestBuilder {
    http.post(format!("{api}{path}"))
        .bearer_auth("bench-token")
        .header("x-ss3-store-id", "bench")
}

/// The `p` quantile of sorted microsecond samples, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}
