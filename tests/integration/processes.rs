//! Several real processes on one Postgres and one consumer group, under kill -9 and connection loss.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::kafka::{brokers, create_topics, producer};
use crate::common::process::{ServiceProcess, cluster_env, wait_healthy};
use crate::common::{ADMIN_TOKEN, Api, Receiver, TestDb};

/// The process tests each load both cores; running them one at a time keeps their timing meaningful.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    env: BTreeMap<String, String>,
    /// The API's base URL, known once the api process reported the port it bound (`api_started`).
    api: String,
    topic: String,
    db: TestDb,
}

async fn cluster() -> Cluster {
    let run = Uuid::new_v4().simple().to_string();
    let topic = format!("ss3.p{run}.orders");
    let publish = format!("integration.p{run}");
    let topics_env = format!(
        "{{{}}}",
        jobs::queue::effects::PUBLISHED
            .map(|t| format!("\"{t}\"=\"{publish}\""))
            .join(",")
    );
    create_topics(&[topic.clone(), publish.clone()]).await;
    let db = TestDb::create().await;
    let topic_regex = format!("^ss3\\.p{run}\\..+");
    let group = format!("g-{run}");
    let env = cluster_env(
        &db.url,
        &[
            ("SS3_KAFKA__BROKERS", &brokers()),
            ("SS3_KAFKA__TOPIC_REGEX", &topic_regex),
            ("SS3_KAFKA__GROUP_ID", &group),
            ("SS3_KAFKA__PUBLISH_TOPICS", &topics_env),
            ("SS3_WORKER__HEARTBEAT_INTERVAL_SECS", "1"),
            ("SS3_WORKER__LEASE_MS", "2000"),
            ("SS3_WORKER__LEASE_RENEW_MS", "500"),
            ("SS3_WORKER__LEASE_RESCUE_MS", "500"),
            ("SS3_WORKER__POLL_INTERVAL_MS", "100"),
        ],
    );
    Cluster {
        env,
        api: String::new(),
        topic,
        db,
    }
}

/// Start a process with the api role (and `roles`), note the address it bound and wait until it is healthy.
async fn api_started(cluster: &mut Cluster, roles: &str, log_name: &str) -> ServiceProcess {
    let process = ServiceProcess::spawn(roles, &cluster.env, log_name);
    cluster.api = process.api_url(Duration::from_secs(30)).await;
    wait_healthy(&format!("{}/health", cluster.api), Duration::from_secs(30)).await;
    process
}

async fn subscribe(cluster: &Cluster, target: &str) {
    Api::new(&cluster.api, ADMIN_TOKEN)
        .create_subscription("store-p", target, &["*"])
        .await;
}

async fn produce_events(topic: &str, n: usize) {
    let p = producer();
    let sends = (0..n).map(|i| {
        let body = json!({"eventId": Uuid::new_v4(), "eventType": "order.placed", "storeId": "store-p", "data": {"n": i}}).to_string();
        let p = p.clone();
        let topic = topic.to_owned();
        async move {
            p.send(rdkafka::producer::FutureRecord::<str, str>::to(&topic).key(&format!("k{i}")).payload(&body), Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
        }
    });
    for r in futures::future::join_all(sends).await {
        r.expect("produce");
    }
}

/// Receipts per delivery id until `want` distinct ids arrived (or `within` passed).
async fn collect(
    receiver: &mut Receiver,
    want: usize,
    within: Duration,
    mut on_progress: impl FnMut(usize),
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < want {
        let Some(r) = receiver.next_before(deadline).await else {
            break;
        };
        *seen
            .entry(r.header("x-ss3-delivery").to_owned())
            .or_default() += 1;
        on_progress(seen.len());
    }
    seen
}

async fn db_counts(url: &str) -> (i64, i64, i64) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let counts = sqlx::query_as("SELECT (SELECT count(*) FROM ingested_events), count(*), count(*) FILTER (WHERE status = 'DELIVERED') FROM webhook_deliveries")
        .fetch_one(&pool)
        .await
        .expect("counts");
    pool.close().await;
    counts
}

/// Catches: lost or doubled deliveries when processes die (the claim/ack protocol, orphan recovery, offset commits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_one_ingest_deliver_10_000_events_despite_kill_9_of_a_worker_and_of_the_ingest()
 {
    const EVENTS: usize = 10_000;
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = cluster().await;
    let mut receiver = Receiver::start(&[]).await;
    let _api = api_started(&mut cluster, "api", "api").await;
    subscribe(&cluster, &receiver.url()).await;
    let mut worker_1 = ServiceProcess::spawn("worker", &cluster.env, "worker-1");
    let _worker_2 = ServiceProcess::spawn("worker", &cluster.env, "worker-2");
    // A stable instance id, as a StatefulSet pod would have: the restarted process takes over its partitions.
    let mut ingest_env = cluster.env.clone();
    ingest_env.insert("SS3_KAFKA__GROUP_INSTANCE_ID".into(), "ingest-0".into());
    let mut ingest = ServiceProcess::spawn("ingest", &ingest_env, "ingest");

    produce_events(&cluster.topic, EVENTS).await;
    let mut killed_worker = false;
    let mut killed_ingest_at: Option<usize> = None;
    let mut restarted: Option<ServiceProcess> = None;
    let seen = collect(
        &mut receiver,
        EVENTS,
        Duration::from_secs(
            std::env::var("SS3_TEST_WAIT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(240),
        ),
        |delivered| {
            if killed_ingest_at.is_none() && delivered >= EVENTS / 5 {
                ingest.kill_9();
                killed_ingest_at = Some(delivered);
                restarted = Some(ServiceProcess::spawn("ingest", &ingest_env, "ingest-2"));
            }
            if !killed_worker && delivered >= EVENTS / 3 {
                worker_1.kill_9();
                killed_worker = true;
            }
        },
    )
    .await;
    if seen.len() != EVENTS {
        let pool = sqlx::PgPool::connect(&cluster.db.url)
            .await
            .expect("connect");
        let jobs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status || ':' || coalesce(lock_by, '-'), count(*) FROM apalis.jobs GROUP BY 1",
        )
        .fetch_all(&pool)
        .await
        .expect("jobs");
        let workers: Vec<(String, String)> =
            sqlx::query_as("SELECT id, (now() - last_seen)::text FROM apalis.workers")
                .fetch_all(&pool)
                .await
                .expect("workers");
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
                .fetch_all(&pool)
                .await
                .expect("rows");
        let parts: Vec<(i32, i64, i64, i64)> = sqlx::query_as("SELECT kafka_partition, min(kafka_offset), max(kafka_offset), count(*) FROM ingested_events GROUP BY 1 ORDER BY 1").fetch_all(&pool).await.expect("parts");
        let gaps: Vec<(i32, i64, i64)> = sqlx::query_as("SELECT kafka_partition, kafka_offset, next - kafka_offset FROM (SELECT kafka_partition, kafka_offset, lead(kafka_offset) OVER (PARTITION BY kafka_partition ORDER BY kafka_offset) AS next FROM ingested_events) x WHERE next - kafka_offset > 1").fetch_all(&pool).await.expect("gaps");
        eprintln!(
            "PARTITIONS (p, min, max, count) {parts:?}\nGAPS (p, after offset, jump) {gaps:?}"
        );
        panic!(
            "{} of {EVENTS} delivered; db {:?}; deliveries {rows:?}; jobs {jobs:?}; workers {workers:?}",
            seen.len(),
            db_counts(&cluster.db.url).await
        );
    }
    assert!(
        killed_worker && killed_ingest_at.is_some(),
        "both kills happened mid-run"
    );
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    // Only jobs claimed but not yet recorded by the killed worker (at most worker.concurrency, 128) may arrive
    // twice, with the same delivery id.
    assert!(duplicates <= 128, "{duplicates} duplicate receipts");
    let (events, deliveries, delivered) = db_counts(&cluster.db.url).await;
    assert_eq!(
        (events, deliveries),
        (EVENTS as i64, EVENTS as i64),
        "no event lost, no duplicate delivery row"
    );
    let mut settled = delivered;
    for _ in 0..100 {
        if settled == EVENTS as i64 {
            break;
        }
        crate::common::wait::pause().await;
        settled = db_counts(&cluster.db.url).await.2;
    }
    assert_eq!(settled, EVENTS as i64, "every row is DELIVERED");
    drop(restarted);
}

/// Catches: the service dying, or losing work, when Postgres drops every connection mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reconnects_and_finishes_after_postgres_drops_its_connections_mid_run() {
    const EVENTS: usize = 3_000;
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = cluster().await;
    let mut receiver = Receiver::start(&[]).await;
    let mut all = api_started(&mut cluster, "api,ingest,worker", "all").await;
    subscribe(&cluster, &receiver.url()).await;
    let admin = sqlx::PgPool::connect(&crate::common::admin_database_url())
        .await
        .expect("admin");
    produce_events(&cluster.topic, EVENTS).await;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut terminated = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while seen.len() < EVENTS {
        let Some(r) = receiver.next_before(deadline).await else {
            break;
        };
        *seen
            .entry(r.header("x-ss3-delivery").to_owned())
            .or_default() += 1;
        if terminated == 0 && seen.len() >= EVENTS / 4 {
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&cluster.db.name)
            .fetch_all(&admin)
            .await
            .expect("terminate");
            terminated = killed.len();
        }
    }
    assert!(terminated > 0, "connections were killed mid-run");
    assert_eq!(
        seen.len(),
        EVENTS,
        "every delivery arrived after the connections were killed"
    );
    let ready: Value = reqwest::get(format!("{}/ready", cluster.api))
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["postgres"], true);
    assert!(
        all.terminate(Duration::from_secs(20)),
        "SIGTERM drains and exits"
    );
    let (events, deliveries, delivered) = db_counts(&cluster.db.url).await;
    assert_eq!(
        (events, deliveries, delivered),
        (EVENTS as i64, EVENTS as i64, EVENTS as i64)
    );
    admin.close().await;
}
