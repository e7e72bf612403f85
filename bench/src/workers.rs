//! Workers suite: deliveries/s with 1 and 2 worker *processes* (`integration-service serve --roles worker`)
//! draining the same backlog, and the recovery time after kill -9 of one of two workers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use workflows::ids::EventId;
use workflows::{EventEnvelope, EventType, StoreId};

use super::BenchArgs;
use super::webhooks::{ReceiverState, Scenario, start_receiver};
use integration_service::api::subscriptions::create_with_secret;
use integration_service::config::Config;
use integration_service::db::events::EventSource;
use integration_service::db::subscriptions::NewSubscription;
use integration_service::startup::Application;

/// The service binary the worker processes run: `--service-bin`, else `integration-service` next to this binary.
fn service_binary(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.service_bin {
        return Ok(path.clone());
    }
    let this = std::env::current_exe()?;
    let sibling = this.with_file_name(format!(
        "integration-service{}",
        std::env::consts::EXE_SUFFIX
    ));
    anyhow::ensure!(
        sibling.exists(),
        "{} not found: build it (cargo build --release -p integration-service) or pass --service-bin",
        sibling.display()
    );
    Ok(sibling)
}

fn spawn_worker(binary: &Path, config: &Config, name: &str) -> anyhow::Result<Child> {
    let c = config;
    Ok(Command::new(binary)
        .args(["serve", "--roles", "worker"])
        .env("DATABASE_URL", c.database_url.expose())
        .env("SS3_SECRETS__KEY_FILE", &c.secrets.key_file)
        .env("SS3_SECRETS__MASTER_KEY", c.secrets.master_key.expose())
        .env("SS3_KAFKA__BROKERS", "")
        .env("SS3_WORKER__NAME", name)
        .env(
            "SS3_WORKER__HEARTBEAT_INTERVAL_SECS",
            c.worker.heartbeat_interval_secs.to_string(),
        )
        .env("SS3_WORKER__LEASE_MS", c.worker.lease_ms.to_string())
        .env(
            "SS3_WORKER__LEASE_RESCUE_MS",
            c.worker.lease_rescue_ms.to_string(),
        )
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// A fresh database with `backlog` pending deliveries (10 subscriptions) to a local receiver.
async fn prepared(
    base: &Config,
    backlog: usize,
) -> anyhow::Result<(Scenario, Arc<Application>, ReceiverState)> {
    let scenario = Scenario::new(base).await?;
    let mut config = scenario.config.clone();
    config.kafka.brokers = String::new();
    let app = Arc::new(Application::build(config, Arc::new(jobs::SystemClock)).await?);
    let state = ReceiverState {
        base: Instant::now(),
        seen: Arc::default(),
    };
    let target = start_receiver(state.clone()).await?;
    for n in 0..10 {
        create_with_secret(
            app.state(),
            &workflows::StoreId::parse("bench")?,
            &NewSubscription {
                name: &format!("w-{n}"),
                target_url: &target,
                events: &["*".to_owned()],
                is_active: true,
                max_in_flight: None,
                payload_filter: None,
                max_per_second: None,
                order: Default::default(),
            },
        )
        .await?;
    }
    for _ in 0..backlog.div_ceil(10) {
        let event = EventEnvelope {
            event_id: EventId(Uuid::new_v4()),
            event_type: EventType::parse("order.placed")?,
            store_id: StoreId::parse("bench")?,
            occurred_at: chrono::Utc::now(),
            data: serde_json::json!({}),
            previous_attributes: None,
        };
        app.state()
            .ingestor
            .ingest_one(event, EventSource::Http, None)
            .await?;
    }
    Ok((scenario, app, state))
}

fn delivered(state: &ReceiverState) -> usize {
    state
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .deliveries
        .len()
}

pub(super) async fn run(base: Config, args: BenchArgs) -> anyhow::Result<()> {
    let backlog = args.backlog.div_ceil(10) * 10;
    let binary = service_binary(&args)?;
    throughput(&base, &binary, backlog).await?;
    recovery(&base, &binary, backlog).await
}

/// Deliveries/s of 1, then 2, worker processes draining the same backlog.
async fn throughput(base: &Config, binary: &Path, backlog: usize) -> anyhow::Result<()> {
    println!("| worker processes | backlog | delivered | seconds | deliveries/s |");
    println!("|---|---|---|---|---|");
    for processes in [1, 2] {
        let (scenario, app, state) = prepared(base, backlog).await?;
        let started = Instant::now();
        let mut children: Vec<Child> = (0..processes)
            .map(|i| spawn_worker(binary, &scenario.config, &format!("bench-{i}")))
            .collect::<anyhow::Result<_>>()?;
        while delivered(&state) < backlog && started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {processes} | {backlog} | {} | {secs:.1} | {:.0} |",
            delivered(&state),
            delivered(&state) as f64 / secs
        );
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        app.state().pool.close().await;
        scenario.drop_db().await;
    }
    Ok(())
}

/// Recovery: kill -9 one of two workers once a third is delivered; time until every job it held is delivered.
async fn recovery(base: &Config, binary: &Path, backlog: usize) -> anyhow::Result<()> {
    let (scenario, app, state) = prepared(base, backlog).await?;
    let pool = app.state().pool.clone();
    let mut victim = spawn_worker(binary, &scenario.config, "bench-victim")?;
    let mut survivor = spawn_worker(binary, &scenario.config, "bench-survivor")?;
    while delivered(&state) < backlog / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    victim.kill()?;
    victim.wait()?;
    let killed_at = Instant::now();
    let held: Vec<Uuid> = sqlx::query_scalar(
        "SELECT (convert_from(job, 'UTF8')::jsonb->>'delivery_id')::uuid FROM apalis.jobs WHERE lock_by = 'bench-victim' AND status IN ('Queued', 'Running')",
    )
    .fetch_all(&pool)
    .await?;
    let held_set: HashSet<Uuid> = held.iter().copied().collect();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE delivery_id = ANY($1) AND status <> 'DELIVERED'")
            .bind(&held)
            .fetch_one(&pool)
            .await?;
        if left == 0 || killed_at.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovery = killed_at.elapsed().as_secs_f64();
    while delivered(&state) < backlog && killed_at.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = &scenario.config.worker;
    println!(
        "\nkill -9 of one of two workers: it held {} claimed jobs; all were delivered by the survivor {recovery:.1} s later \
         (bound = lease {} ms + rescue interval {} ms); {} of {backlog} delivered in the end",
        held_set.len(),
        c.lease_ms,
        c.lease_rescue_ms,
        delivered(&state)
    );
    let _ = survivor.kill();
    let _ = survivor.wait();
    app.state().pool.close().await;
    scenario.drop_db().await;
    Ok(())
}
