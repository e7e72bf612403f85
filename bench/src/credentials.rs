//! Credentials suite: `GET /credentials/validate` requests/s and latency, for one key repeatedly (cached path)
//! and for distinct keys (bcrypt path), over HTTP on loopback with the configured bcrypt cost; then a flood of
//! `--flood-connections` random keys with the cached key probed alongside (in this process: the `flood` suite
//! runs the same client against a separate `serve` process, which is the figure that counts).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::webhooks::Scenario;
use super::{BenchArgs, percentile};
use integration_service::config::{Config, Secret};
use integration_service::startup::{Application, Roles};

async fn load(
    http: &reqwest::Client,
    url: &str,
    keys: &[String],
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<u64>, usize)> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<(u64, bool)>> = futures::stream::iter(0..requests)
        .map(|i| {
            let key = &keys[i % keys.len()];
            async move {
                let t = Instant::now();
                let body: serde_json::Value =
                    http.get(url).bearer_auth(key).send().await?.json().await?;
                Ok((t.elapsed().as_micros() as u64, body["valid"] == true))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(results.len());
    let mut valid = 0;
    for r in results {
        let (us, ok) = r?;
        latencies.push(us);
        valid += usize::from(ok);
    }
    latencies.sort_unstable();
    Ok((requests as f64 / elapsed, latencies, valid))
}

pub(super) async fn run(base: Config, args: BenchArgs) -> anyhow::Result<()> {
    let scenario = Scenario::new(&base).await?;
    let mut config = scenario.config.clone();
    config.kafka.brokers = String::new();
    config.admin_token = Secret::new("bench-token");
    let cost = config.credentials.bcrypt_cost;
    let app = Arc::new(Application::build(config, Arc::new(jobs::SystemClock)).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let runner = Arc::clone(&app);
    let token = shutdown.clone();
    let running = tokio::spawn(async move { runner.run(Roles::API, Some(listener), token).await });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    let keys = create_keys(&http, &api, args.distinct_keys.max(1)).await?;
    measure(&http, &api, &keys, cost, &args).await?;
    let stats = app.state().validator.cache_stats();
    println!("\ncache: {} hits, {} misses", stats.hits, stats.misses);
    if args.flood_connections > 0 {
        let url = format!("{api}/credentials/validate");
        let report = super::flood::flood(
            &url,
            &keys[0],
            args.flood_connections,
            std::time::Duration::from_secs(args.flood_secs),
            std::time::Duration::from_millis(10),
            args.probe_runtime,
        )
        .await?;
        println!("\n{}", super::flood::FloodReport::HEADER);
        println!(
            "{}",
            report.row(&format!("in-process, cost {cost}"), args.flood_connections)
        );
    }

    shutdown.cancel();
    let _ = running.await;
    app.state().pool.close().await;
    scenario.drop_db().await;
    Ok(())
}

/// `count` API keys of store `bench`, 8 created at a time.
async fn create_keys(
    http: &reqwest::Client,
    api: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::with_capacity(count);
    let creating = futures::stream::iter(0..count)
        .map(|n| {
            let http = http.clone();
            async move {
                let r: serde_json::Value = crate::post_as_bench(&http, api, "/credentials")
                    .json(&json!({"name": format!("key-{n}"), "type": "API_KEY", "scopes": ["orders:read"]}))
                    .send()
                    .await?
                    .json()
                    .await?;
                r["apiKey"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no key in {r}"))
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for k in creating {
        keys.push(k?);
    }
    Ok(keys)
}

/// The table: distinct keys (each pays a bcrypt), then one key validated over and over (cached).
async fn measure(
    http: &reqwest::Client,
    api: &str,
    keys: &[String],
    cost: u32,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    println!(
        "| path | bcrypt cost | requests | concurrency | valid | requests/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let url = format!("{api}/credentials/validate");
    // Distinct keys first, so none of them is cached: every request pays one bcrypt verification.
    let (rps, lat, valid) = load(http, &url, keys, keys.len(), args.concurrency).await?;
    println!(
        "| distinct keys (bcrypt) | {cost} | {} | {} | {valid} | {rps:.0} | {:.2} | {:.2} |",
        keys.len(),
        args.concurrency,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    let one = vec![keys[0].clone()];
    let _ = load(http, &url, &one, 1000, args.concurrency).await?; // warm-up
    let (rps, lat, valid) = load(http, &url, &one, args.validations, args.concurrency).await?;
    println!(
        "| same key (cached) | {cost} | {} | {} | {valid} | {rps:.0} | {:.3} | {:.3} |",
        args.validations,
        args.concurrency,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    Ok(())
}
