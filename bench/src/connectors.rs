//! Connector suite: outbound connector jobs/s against a local fake of Amazon's Listings API (LWA token endpoint
//! included), while the same events fan out to webhook subscriptions. Everything runs in this process on the
//! same machine, through the HTTP API and the real worker loop. Two phases per fan-out: the events are ingested
//! with no worker running (ingest rate), then the worker role starts and drains the backlog (jobs/s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::web::Data;
use poem::{EndpointExt, Route, handler};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::BenchArgs;
use super::webhooks::{ReceiverState, Scenario, app_with_subscribers};
use integration_service::config::{Config, Secret};
use integration_service::startup::Roles;

#[handler]
async fn fake_amazon(req: &poem::Request, calls: Data<&Arc<AtomicU64>>) -> poem::Response {
    calls.fetch_add(1, Ordering::Relaxed);
    let body = if req.uri().path().ends_with("/token") {
        json!({"access_token": "Atza|bench", "token_type": "bearer", "expires_in": 3600})
    } else {
        json!({"sku": "bench", "status": "ACCEPTED", "submissionId": "bench", "issues": []})
    };
    poem::Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

async fn start_fake() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicU64::new(0));
    let app = Route::new().at("/*path", fake_amazon).data(calls.clone());
    tokio::spawn(async move {
        if let Ok(acceptor) = poem::listener::TcpAcceptor::from_tokio(listener) {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        }
    });
    Ok((format!("http://{addr}"), calls))
}

/// Run the suite and print a table.
pub(super) async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "| events | configs | webhook fan-out | ingest events/s | connector jobs | jobs/s | webhook deliveries | deliveries/s | channel requests | drain s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &fanout in &args.fanout {
        scenario(
            &config,
            args.events,
            args.configs.max(1),
            fanout,
            args.channel_rate,
        )
        .await?;
    }
    Ok(())
}

async fn scenario(
    base: &Config,
    events: usize,
    configs: usize,
    fanout: usize,
    channel_rate: f64,
) -> anyhow::Result<()> {
    let scenario = Scenario::new(base).await?;
    let mut config = scenario.config.clone();
    config.kafka.brokers = String::new();
    config.admin_token = Secret::new("bench-token");
    let (fake, calls) = start_fake().await?;
    config.connectors.amazon.lwa_endpoint = format!("{fake}/auth/o2/token");
    config.connectors.amazon.sp_api_na = fake.clone();
    let (app, receiver) = app_with_subscribers(&config, fanout).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let runner = Arc::clone(&app);
    let token = shutdown.clone();
    let running = tokio::spawn(async move { runner.run(Roles::API, Some(listener), token).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let http = reqwest::Client::new();
    create_configs(&http, &api, configs, channel_rate).await?;
    let ingest_rate = ingest(&http, &api, events).await?;

    let started = Instant::now();
    let worker_role = Roles {
        api: false,
        ingest: false,
        worker: true,
    };
    let (runner, token) = (Arc::clone(&app), shutdown.clone());
    let working = tokio::spawn(async move { runner.run(worker_role, None, token).await });
    let pool = app.state().pool.clone();
    let expected = Expected {
        jobs: events * configs,
        hooks: events * fanout,
    };
    let drained = drain(&pool, &receiver, expected, started).await?;
    let hooks = delivered(&receiver);
    let per_sec =
        |n: usize, at: Option<Duration>| at.map_or(f64::NAN, |d| n as f64 / d.as_secs_f64());
    println!(
        "| {events} | {configs} | {fanout} | {ingest_rate:.0} | {}/{} | {:.0} | {hooks}/{} | {:.0} | {} | {:.1} |",
        drained.jobs_done,
        expected.jobs,
        per_sec(drained.jobs_done as usize, drained.jobs_at),
        expected.hooks,
        if fanout == 0 {
            f64::NAN
        } else {
            per_sec(hooks, drained.hooks_at)
        },
        calls.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    shutdown.cancel();
    let _ = running.await;
    let _ = working.await;
    pool.close().await;
    scenario.drop_db().await;
    Ok(())
}

/// `configs` Amazon configs of store `bench`, each with its own rate limit (`channel_rate`, or lifted when 0).
async fn create_configs(
    http: &reqwest::Client,
    api: &str,
    configs: usize,
    channel_rate: f64,
) -> anyhow::Result<()> {
    // By default the channel's rate limit is lifted: this measures our side, not Amazon's 5 requests/s.
    let rate = if channel_rate > 0.0 {
        json!({"perSecond": channel_rate, "burst": 1})
    } else {
        json!({"perSecond": 100000.0, "burst": 1000})
    };
    for n in 0..configs {
        let created = crate::post_as_bench(http, api, "/connectors")
            .json(&json!({
                "connectorType": "amazon", "displayName": format!("bench-{n}"), "pollIntervalSecs": 0,
                "eventSubscriptions": ["inventory.updated"],
                "settings": {"sellerId": "S", "marketplaceId": "M", "rateLimit": rate},
                "credentials": {"apiKey": "id", "apiSecret": "secret", "refreshToken": "refresh"},
            }))
            .send()
            .await?;
        anyhow::ensure!(
            created.status() == 201,
            "create connector: {}",
            created.text().await?
        );
    }
    Ok(())
}

/// `events` stock updates through `POST /events`, 64 in flight; returns the accepted events per second.
async fn ingest(http: &reqwest::Client, api: &str, events: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let send = |n: usize| async move {
        let event = json!({"eventId": Uuid::new_v4(), "eventType": "inventory.updated", "storeId": "bench",
                           "data": {"sku": format!("SKU-{n}"), "quantity": n % 50}});
        let r = http
            .post(format!("{api}/events"))
            .bearer_auth("bench-token")
            .json(&event)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "POST /events: {}", r.status());
        Ok(())
    };
    let results: Vec<anyhow::Result<()>> = futures::stream::iter((0..events).map(send))
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// What a run must reach: succeeded connector jobs and distinct webhook deliveries.
#[derive(Clone, Copy)]
struct Expected {
    jobs: usize,
    hooks: usize,
}

/// How far the drain got: jobs succeeded, and when each target was reached (from `started`).
struct Drained {
    jobs_done: i64,
    jobs_at: Option<Duration>,
    hooks_at: Option<Duration>,
}

fn delivered(receiver: &ReceiverState) -> usize {
    receiver
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .deliveries
        .len()
}

/// Until both targets are reached (at most 300 s).
async fn drain(
    pool: &sqlx::PgPool,
    receiver: &ReceiverState,
    expected: Expected,
    started: Instant,
) -> anyhow::Result<Drained> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut drained = Drained {
        jobs_done: 0,
        jobs_at: None,
        hooks_at: None,
    };
    loop {
        if delivered(receiver) >= expected.hooks && drained.hooks_at.is_none() {
            drained.hooks_at = Some(started.elapsed());
        }
        if drained.jobs_at.is_none() {
            drained.jobs_done = sqlx::query_scalar(
                "SELECT count(*) FROM connector_jobs WHERE status = 'SUCCEEDED'",
            )
            .fetch_one(pool)
            .await?;
            if drained.jobs_done as usize >= expected.jobs {
                drained.jobs_at = Some(started.elapsed());
            }
        }
        if (drained.jobs_at.is_some() && drained.hooks_at.is_some()) || Instant::now() > deadline {
            return Ok(drained);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
