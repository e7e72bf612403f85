//! A flood of well-formed random API keys on `GET /credentials/validate`, with a probe of one valid (cached) key
//! alongside: the attack of issue 9 item 2, as a client would run it. Used by the credentials suite in-process, and
//! by the `flood` suite from a separate process against a running `serve` (`--api`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{BenchArgs, percentile};
use integration_service::credentials::random_base62;

/// What the flood and the probe saw.
#[derive(Debug, Default)]
pub(super) struct FloodReport {
    /// Flood answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// 503 answers that carried `Retry-After`.
    pub shed_with_retry_after: u64,
    /// Flood requests that got no HTTP answer (connection errors, timeouts).
    pub transport_errors: u64,
    /// What the probe of the valid key saw (latencies sorted).
    pub probe: Probed,
    /// Length of the flood.
    pub elapsed: Duration,
}

impl FloodReport {
    /// Flood answers of 500 or above other than 503.
    pub fn unexpected_5xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500 && **s != 503)
            .map(|(_, n)| n)
            .sum()
    }

    /// One markdown row (the header is [`FloodReport::HEADER`]).
    pub fn row(&self, label: &str, concurrency: usize) -> String {
        let total: u64 = self.statuses.values().sum();
        let shed = self.statuses.get(&503).copied().unwrap_or(0);
        let by_status = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "| {label} | {concurrency} | {:.0} | {total} ({:.0}/s) | {by_status} | {} | {:.1} % | {} | {} / {} | {:.2} | {:.2} | {:.2} |",
            self.elapsed.as_secs_f64(),
            total as f64 / self.elapsed.as_secs_f64(),
            self.unexpected_5xx(),
            if total == 0 {
                0.0
            } else {
                100.0 * shed as f64 / total as f64
            },
            self.shed_with_retry_after,
            self.probe.valid,
            self.probe.sent,
            percentile(&self.probe.latencies, 0.5),
            percentile(&self.probe.latencies, 0.99),
            percentile(&self.probe.latencies, 1.0),
        )
    }

    /// Header of [`FloodReport::row`].
    pub const HEADER: &str = "| run | flood connections | secs | flood requests | by status | 5xx other than 503 | 503 share | 503 with Retry-After | probe valid / sent | probe p50 ms | probe p99 ms | probe max ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|";
}

/// A well-formed API key that (almost surely) does not exist.
fn random_key() -> String {
    format!("ss3_live_{}_{}", random_base62(12), random_base62(32))
}

/// Where the probe runs in the flooding process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeRuntime {
    /// An OS thread with a runtime of its own, as a gateway is a process apart from the attacker: the probe's
    /// figures are the service's answer time and the machine's scheduling, not the flood tasks' queue.
    Own,
    /// On the flood's runtime, behind its 1,000 tasks (what the figures before 2026-11-28 22:00 measured).
    Shared,
}

/// What the probe saw.
#[derive(Debug, Default)]
pub(super) struct Probed {
    /// Answers that were 200 `valid: true`.
    pub valid: usize,
    /// Requests in all.
    pub sent: usize,
    /// Latencies (µs).
    pub latencies: Vec<u64>,
}

/// Validate `key` every `every` for `length` (from `started`).
async fn probe_loop(
    url: String,
    key: String,
    started: Instant,
    length: Duration,
    every: Duration,
) -> Probed {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client with a timeout builds");
    let mut seen = Probed::default();
    let mut tick = tokio::time::interval(every);
    while started.elapsed() < length {
        tick.tick().await;
        let t = Instant::now();
        let valid = probe(&http, &url, &key).await;
        seen.latencies.push(t.elapsed().as_micros() as u64);
        seen.sent += 1;
        seen.valid += usize::from(valid);
    }
    seen
}

/// Run the probe where `runtime` says, until it is done.
async fn run_probe(
    runtime: ProbeRuntime,
    url: &str,
    key: &str,
    started: Instant,
    length: Duration,
    every: Duration,
) -> anyhow::Result<Probed> {
    let probing = probe_loop(url.to_owned(), key.to_owned(), started, length, every);
    match runtime {
        ProbeRuntime::Shared => Ok(probing.await),
        ProbeRuntime::Own => {
            let (done, seen) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("probe".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime builds");
                    let _ = done.send(rt.block_on(probing));
                })?;
            Ok(seen.await?)
        }
    }
}

/// `concurrency` connections each sending random keys back to back for `length`, while one more connection
/// validates `probe_key` every `probe_every`, on the runtime `probe_runtime` says.
pub(super) async fn flood(
    url: &str,
    probe_key: &str,
    concurrency: usize,
    length: Duration,
    probe_every: Duration,
    probe_runtime: ProbeRuntime,
) -> anyhow::Result<FloodReport> {
    let flood_http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut floods = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, stop) = (flood_http.clone(), url.to_owned(), stop.clone());
        floods.spawn(async move {
            let mut seen = FloodReport::default();
            while !stop.is_cancelled() {
                match http.get(&url).bearer_auth(random_key()).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status == 503 && r.headers().contains_key("retry-after") {
                            seen.shed_with_retry_after += 1;
                        }
                        *seen.statuses.entry(status).or_default() += 1;
                        let _ = r.bytes().await;
                    }
                    Err(_) => seen.transport_errors += 1,
                }
            }
            seen
        });
    }
    let probe = run_probe(probe_runtime, url, probe_key, started, length, probe_every).await?;
    stop.cancel();
    let mut report = FloodReport {
        probe,
        ..FloodReport::default()
    };
    while let Some(seen) = floods.join_next().await {
        let seen = seen?;
        for (status, n) in seen.statuses {
            *report.statuses.entry(status).or_default() += n;
        }
        report.shed_with_retry_after += seen.shed_with_retry_after;
        report.transport_errors += seen.transport_errors;
    }
    report.elapsed = started.elapsed();
    report.probe.latencies.sort_unstable();
    Ok(report)
}

/// Issue an API key through the API as an operator (`token`) of store `bench-flood`.
pub(super) async fn issue_key(api: &str, token: &str) -> anyhow::Result<String> {
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/credentials"))
        .bearer_auth(token)
        .header("x-ss3-store-id", "bench-flood")
        .json(&json!({"name": format!("flood-probe-{}", random_base62(6)), "type": "API_KEY", "scopes": ["orders:read"]}))
        .send()
        .await?
        .json()
        .await?;
    r["apiKey"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no key in {r}"))
}

/// The `flood` suite: against a running service at `--api` (operator token `--api-token`), from this process.
pub(super) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let api = args
        .api
        .as_deref()
        .ok_or_else(|| {
            anyhow::anyhow!("the flood suite needs --api http://host:port of a running service")
        })?
        .trim_end_matches('/')
        .to_owned();
    let key = issue_key(&api, &args.api_token).await?;
    let url = format!("{api}/credentials/validate");
    // Validate once so the probe measures the cached path, as a gateway's steady traffic would.
    reqwest::Client::new()
        .get(&url)
        .bearer_auth(&key)
        .send()
        .await?;
    let report = flood(
        &url,
        &key,
        args.flood_connections,
        Duration::from_secs(args.flood_secs),
        Duration::from_millis(10),
        args.probe_runtime,
    )
    .await?;
    println!("{}", FloodReport::HEADER);
    println!("{}", report.row("external flood", args.flood_connections));
    println!("transport errors: {}", report.transport_errors);
    Ok(())
}

/// One validation of `key`: whether it answered 200 `valid: true`.
async fn probe(http: &reqwest::Client, url: &str, key: &str) -> bool {
    match http.get(url).bearer_auth(key).send().await {
        Ok(r) if r.status() == 200 => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|b| b["valid"] == true),
        _ => false,
    }
}
