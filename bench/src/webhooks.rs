//! Webhook suite: deliveries/s and event→receiver latency, through Kafka and through HTTP ingest,
//! against a local receiver, in this process (the receiver shares the machine, as it would on a 2-core box).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::web::Data;
use poem::{EndpointExt, Route, handler};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use integration_service::api::subscriptions::create_with_secret;
use integration_service::config::{Config, Secret};
use integration_service::db::subscriptions::NewSubscription;
use integration_service::startup::{Application, Roles};

use super::send::{Sender, stamped_event};
use super::{BenchArgs, percentile};

#[derive(Default)]
pub(super) struct Seen {
    pub(super) latencies_us: Vec<u64>,
    pub(super) deliveries: HashSet<String>,
    pub(super) duplicates: usize,
}

#[derive(Clone)]
pub(super) struct ReceiverState {
    pub(super) base: Instant,
    pub(super) seen: Arc<Mutex<Seen>>,
}

#[handler]
async fn receive(req: &poem::Request, body: Vec<u8>, state: Data<&ReceiverState>) -> &'static str {
    let now = state.base.elapsed().as_micros() as u64;
    let sent = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["sentAtUs"].as_u64())
        .unwrap_or(now);
    let id = req.header("x-ss3-delivery").unwrap_or_default().to_owned();
    let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.deliveries.insert(id) {
        seen.latencies_us.push(now.saturating_sub(sent));
    } else {
        seen.duplicates += 1;
    }
    "ok"
}

pub(super) async fn start_receiver(state: ReceiverState) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Route::new().at("/hook", poem::post(receive)).data(state);
    tokio::spawn(async move {
        if let Ok(acceptor) = poem::listener::TcpAcceptor::from_tokio(listener) {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        }
    });
    Ok(format!("http://{addr}/hook"))
}

/// The service built from `config`, with `fanout` subscriptions of store `bench`, matching every event, to a local
/// receiver.
pub(super) async fn app_with_subscribers(
    config: &Config,
    fanout: usize,
) -> anyhow::Result<(Arc<Application>, ReceiverState)> {
    let app = Arc::new(Application::build(config.clone(), Arc::new(jobs::SystemClock)).await?);
    let state = ReceiverState {
        base: Instant::now(),
        seen: Arc::default(),
    };
    let target = start_receiver(state.clone()).await?;
    for n in 0..fanout {
        create_with_secret(
            app.state(),
            &workflows::StoreId::parse("bench")?,
            &NewSubscription {
                name: &format!("bench-{n}"),
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
    Ok((app, state))
}

pub(super) struct Scenario {
    pub(super) config: Config,
    db_name: String,
    admin: PgPool,
}

impl Scenario {
    /// A fresh database on the configured server, dropped at the end.
    pub(super) async fn new(base: &Config) -> anyhow::Result<Self> {
        let url = base.database_url.expose();
        let (server, _) = url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("database_url has no database name"))?;
        let admin = PgPool::connect(&format!("{server}/postgres")).await?;
        let db_name = format!("ss3_bench_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await?;
        let mut config = base.clone();
        config.database_url = Secret::new(format!("{server}/{db_name}"));
        Ok(Self {
            config,
            db_name,
            admin,
        })
    }

    pub(super) async fn drop_db(self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.db_name
        )))
        .execute(&self.admin)
        .await;
    }
}

/// Run every scenario and print a table.
pub(super) async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "| ingest | fan-out | mode | events | deliveries | duplicates | deliveries/s | p50 ms | p95 ms | p99 ms | row writes/delivery |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for via in &args.via {
        if via == "kafka" && !config.kafka.enabled() {
            eprintln!("skipping kafka: set SS3_KAFKA__BROKERS");
            continue;
        }
        for &fanout in &args.fanout {
            scenario(&config, via, fanout, Load::Burst(args.events)).await?;
            scenario(
                &config,
                via,
                fanout,
                Load::Rate(args.rate, Duration::from_secs(args.latency_secs)),
            )
            .await?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Load {
    Burst(usize),
    Rate(u32, Duration),
}

async fn scenario(base: &Config, via: &str, fanout: usize, load: Load) -> anyhow::Result<()> {
    let (scenario, config, topic) = configured(base, via).await?;
    let (app, state) = app_with_subscribers(&config, fanout).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let runner = Arc::clone(&app);
    let token = shutdown.clone();
    let running = tokio::spawn(async move { runner.run(Roles::ALL, Some(listener), token).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sender = Arc::new(Sender::new(via, &config, api, topic)?);
    let writes_before = row_writes(&config).await?;
    let started = Instant::now();
    let latency_run = matches!(load, Load::Rate(..));
    let (mode, events) = drive(&sender, load, state.base).await?;
    let expected = events * fanout;
    wait_for_deliveries(&state, expected).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut seen = std::mem::take(&mut *state.seen.lock().unwrap_or_else(|p| p.into_inner()));
    seen.latencies_us.sort_unstable();
    let got = seen.deliveries.len();
    let stages = if latency_run {
        Some(stages(&config).await?)
    } else {
        None
    };
    // Stop the service first: its connections close, and Postgres counts what they wrote (backends report their
    // table statistics in batches, at the latest when they exit).
    shutdown.cancel();
    let _ = running.await;
    app.state().pool.close().await;
    let writes = row_writes(&config).await? - writes_before;
    println!(
        "| {via} | {fanout} | {mode} | {events} | {got}/{expected} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |",
        seen.duplicates,
        got as f64 / elapsed,
        percentile(&seen.latencies_us, 0.50),
        percentile(&seen.latencies_us, 0.95),
        percentile(&seen.latencies_us, 0.99),
        writes as f64 / got.max(1) as f64,
    );
    if let Some(stages) = stages {
        let acked = sender.acked();
        let acked = [0.50, 0.95, 0.99].map(|p| percentile(&acked, p));
        println!(
            "|   stages, ms p50/p95/p99 | {via} | {fanout} | send acknowledged {:.1}/{:.1}/{:.1} · {stages} |",
            acked[0], acked[1], acked[2]
        );
    }
    scenario.drop_db().await;
    Ok(())
}

/// Rows inserted, updated and deleted so far in the run's database, every table of ours and apalis' together
/// (`pg_stat_all_tables`), read on a connection of its own. Includes the outbox relay's and the sweep's writes
/// when they ran during the run; the retention pass runs later.
async fn row_writes(config: &Config) -> anyhow::Result<i64> {
    let pool = sqlx::PgPool::connect(config.database_url.expose()).await?;
    // Give exiting backends a moment to report (they flush their counters on exit).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 FROM pg_stat_all_tables
         WHERE schemaname IN ('public', 'apalis')",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(total)
}

/// Where a latency run's first attempts spent their time, from the run's own rows (p50/p95/p99 in ms): from the
/// event's `occurredAt` (stamped by the bench as it sends) to the ingest transaction (`received_at`, its `now()`:
/// broker, consumer fetch and batching for Kafka, the request for HTTP); from there to the attempt's start (ingest
/// statements, commit, hand-off or claim); the attempt itself (signing, POST, the receiver's answer).
async fn stages(config: &Config) -> anyhow::Result<String> {
    let pool = sqlx::PgPool::connect(config.database_url.expose()).await?;
    let rows: Vec<(String, f64, f64, f64)> = sqlx::query_as(
        "WITH s AS (
           SELECT extract(epoch FROM e.received_at - e.occurred_at) * 1000 AS ingest,
                  extract(epoch FROM a.started_at - e.received_at) * 1000 AS queued,
                  extract(epoch FROM a.finished_at - a.started_at) * 1000 AS attempt
           FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id)
           JOIN ingested_events e USING (event_id)
           WHERE a.attempt_number = 1)
         SELECT stage, q[1], q[2], q[3] FROM (
           SELECT 'event → ingest tx' AS stage, 1 AS n,
                  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ingest) AS q FROM s
           UNION ALL SELECT 'ingest tx → attempt', 2,
                  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY queued) FROM s
           UNION ALL SELECT 'attempt', 3,
                  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY attempt) FROM s) AS p
         ORDER BY n",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    Ok(rows
        .iter()
        .map(|(stage, p50, p95, p99)| format!("{stage} {p50:.1}/{p95:.1}/{p99:.1}"))
        .collect::<Vec<_>>()
        .join(" · "))
}

/// A fresh database and the config of one run: its own topic (created when events go through Kafka, otherwise
/// no Kafka at all), its own consumer group, the bench's operator token.
async fn configured(base: &Config, via: &str) -> anyhow::Result<(Scenario, Config, String)> {
    let scenario = Scenario::new(base).await?;
    let mut config = scenario.config.clone();
    let topic = format!("ss3.bench.{}", Uuid::new_v4().simple());
    config.kafka.topics = vec![topic.clone()];
    config.kafka.topic_regex = String::new();
    config.kafka.group_id = format!("bench-{}", Uuid::new_v4());
    config.admin_token = Secret::new("bench-token");
    if via == "kafka" {
        integration_service::ingest::kafka::create_topics(
            &config.kafka.brokers,
            std::slice::from_ref(&topic),
            config.kafka.create_partitions,
        )
        .await?;
    } else {
        config.kafka.brokers = String::new();
    }
    Ok((scenario, config, topic))
}

/// Send the load; returns its label and the number of events sent.
async fn drive(sender: &Arc<Sender>, load: Load, base: Instant) -> anyhow::Result<(String, usize)> {
    match load {
        Load::Burst(n) => {
            let results: Vec<anyhow::Result<()>> =
                futures::stream::iter((0..n).map(|_| sender.send(stamped_event(base))))
                    .buffer_unordered(64)
                    .collect()
                    .await;
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            Ok(("burst".to_owned(), n))
        }
        Load::Rate(rate, length) => {
            let n = (rate as u64 * length.as_secs()) as usize;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let mut inflight = futures::stream::FuturesUnordered::new();
            // Each send is a task of its own, so it makes progress between ticks (a future only polled at the
            // ticks waited for the next one to open its connection or write its request: 1 s at 1 event/s).
            for _ in 0..n {
                tick.tick().await;
                let (sender, body) = (Arc::clone(sender), stamped_event(base));
                inflight.push(tokio::spawn(async move { sender.send(body).await }));
                while let Some(Some(r)) = futures::FutureExt::now_or_never(inflight.next()) {
                    r??;
                }
            }
            while let Some(r) = inflight.next().await {
                r??;
            }
            Ok((format!("{rate}/s"), n))
        }
    }
}

/// Until the receiver has seen `expected` distinct deliveries (at most 300 s).
async fn wait_for_deliveries(state: &ReceiverState, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while state
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .deliveries
        .len()
        < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
