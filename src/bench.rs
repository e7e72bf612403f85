//! `integration-service bench`: throughput and latency against a local receiver (filled in below).

/// Arguments of the bench command.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {}

/// Run the benchmark.
pub async fn run(_config: crate::config::Config, _args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
