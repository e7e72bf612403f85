//! Chaos (issue 15): bursts through Kafka while the real PostgreSQL server is restarted at chosen steps of the
//! worker's claim → send → flush cycle, and while Vault, tansu and the receiver are frozen or restarted.
//!
//! Every dependency is private to the test (a throwaway PostgreSQL cluster, tansu, OpenBao, the receiver) so it
//! can be stopped without touching the other tests. Where a fault must hit one exact point of the cycle, the
//! worker's fault seam places it there (`Step`): the claim that commits while its reply is lost, which left 100
//! deliveries PENDING forever in the issue, happens on every run, not by timing luck.
//!
//! Assertions: every event reaches the receiver; all receipts of one event carry one delivery id; no event waits
//! longer than the outage plus the documented bound (`lease + rescue interval`, plus the retry schedule when the
//! receiver itself was down) plus `MARGIN` for a loaded 2-core machine.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_service::config::Config;
use integration_service::startup::{Application, Roles};
use jobs::worker::Step;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::broker::OwnBroker;
use crate::common::faults::{Hook, ScriptedFaults};
use crate::common::pg_cluster::{Stop, ThrowawayPg};
use crate::common::vault::{OwnVault, use_vault};
use crate::common::{ADMIN_TOKEN, Receiver, test_config_for};

/// The chaos tests each load both cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Slack for a machine shared with other builds and tests: waits are compared with outage + bound + this.
const MARGIN: Duration = Duration::from_secs(15);
/// Events per burst.
const BURST: usize = 30;
/// Service time runs 60× faster: the first retries come 1 s and 5 s after a failure.
const TIME_SCALE: f64 = 1.0 / 60.0;

/// What the receiver saw of one event.
#[derive(Default)]
struct Seen {
    delivery_ids: HashSet<String>,
    receipts: usize,
    first: Option<Instant>,
}

/// The service in-process (all roles, the real loops) against private servers, and what reached the receiver.
struct Harness {
    pg: Arc<ThrowawayPg>,
    broker: OwnBroker,
    vault: OwnVault,
    receiver: Receiver,
    faults: Arc<ScriptedFaults>,
    api: String,
    pool: PgPool,
    producer: FutureProducer,
    topic: String,
    /// event tag → when it was produced, and the longest it may wait.
    produced: HashMap<String, (Instant, Duration)>,
    seen: HashMap<String, Seen>,
    bound: Duration,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Self {
        let pg = Arc::new(
            tokio::task::spawn_blocking(ThrowawayPg::start)
                .await
                .expect("initdb"),
        );
        let broker = OwnBroker::start().await;
        let vault = OwnVault::start().await;
        let run = Uuid::new_v4().simple().to_string();
        let topic = format!("ss3.chaos{run}.orders");
        let publish = format!("integration.chaos{run}");
        integration_service::ingest::kafka::create_topics(
            &broker.addr,
            &[topic.clone(), publish.clone()],
            2,
        )
        .await
        .expect("topics");
        let config = chaos_config(&pg, &broker, &vault, &topic, &publish);
        let bound = Duration::from_millis(config.worker.lease_ms + config.worker.lease_rescue_ms);
        let faults = ScriptedFaults::new();
        let app = Application::build(config, Arc::new(jobs::ScaledClock::new(TIME_SCALE)))
            .await
            .expect("application builds")
            .with_worker_faults(faults.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let api = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            app.run(Roles::ALL, Some(listener), token)
                .await
                .expect("app runs")
        });
        let receiver = Receiver::start(&[]).await;
        let pool = PgPool::connect(&pg.url()).await.expect("connect");
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("message.timeout.ms", "60000")
            .create()
            .expect("producer");
        let harness = Self {
            pg,
            broker,
            vault,
            receiver,
            faults,
            api,
            pool,
            producer,
            topic,
            produced: HashMap::new(),
            seen: HashMap::new(),
            bound,
            shutdown,
        };
        harness.subscribe().await;
        harness
    }

    async fn subscribe(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/subscriptions", self.api))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-ss3-store-id", "store-c")
            .json(&json!({"name": "chaos", "targetUrl": self.receiver.url(), "events": ["*"]}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "subscribe");
    }

    /// The events of a burst (and their tags), each allowed to wait `allowed` from now.
    fn burst(&mut self, allowed: Duration) -> (Vec<String>, Vec<Value>) {
        (0..BURST)
            .map(|n| {
                let tag = Uuid::new_v4().to_string();
                self.produced.insert(tag.clone(), (Instant::now(), allowed));
                let event = json!({"eventId": Uuid::new_v4(), "eventType": "order.placed", "storeId": "store-c",
                       "occurredAt": "2026-11-28T03:00:00Z", "data": {"chaos": tag, "n": n}});
                (tag, event)
            })
            .unzip()
    }

    /// Produce a burst; each event may wait `allowed` (its outage + the bound + `MARGIN`). Returns their tags.
    async fn produce_burst(&mut self, allowed: Duration) -> Vec<String> {
        let (tags, events) = self.burst(allowed);
        produce(self.producer.clone(), self.topic.clone(), events).await;
        tags
    }

    /// Record what the receiver got so far.
    fn drain(&mut self) {
        for r in self.receiver.drain() {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let tag = body["data"]["chaos"]
                .as_str()
                .or_else(|| body["chaos"].as_str())
                .unwrap_or_default()
                .to_owned();
            let seen = self.seen.entry(tag).or_default();
            seen.delivery_ids
                .insert(r.header("x-ss3-delivery").to_owned());
            seen.receipts += 1;
            seen.first.get_or_insert(r.at);
        }
    }

    /// Wait until every event produced so far reached the receiver; fail, with the queue's state, if one waited
    /// longer than it was allowed.
    async fn all_delivered(&mut self, phase: &str) {
        let last_deadline = self
            .produced
            .values()
            .map(|(at, allowed)| *at + *allowed)
            .max()
            .expect("events produced");
        loop {
            self.drain();
            let missing = self.missing();
            if missing.is_empty() {
                break;
            }
            if Instant::now() > last_deadline {
                panic!(
                    "{phase}: {} events never reached the receiver in time; {}",
                    missing.len(),
                    self.queue_state().await
                );
            }
            crate::common::wait::pause().await;
        }
        for (tag, (produced, allowed)) in &self.produced {
            let seen = &self.seen[tag];
            let waited = seen.first.expect("received") - *produced;
            assert!(
                waited <= *allowed,
                "{phase}: event {tag} waited {waited:?}, more than {allowed:?}"
            );
            assert_eq!(
                seen.delivery_ids.len(),
                1,
                "{phase}: event {tag} arrived under several delivery ids"
            );
        }
    }

    /// The longest wait and the repeats among `tags`, for the test's output.
    fn summary(&self, tags: &[String]) -> String {
        let waits = tags.iter().filter_map(|t| {
            let (produced, _) = self.produced.get(t)?;
            Some(self.seen.get(t)?.first? - *produced)
        });
        let longest = waits.max().unwrap_or_default();
        let repeats: usize = tags
            .iter()
            .filter_map(|t| self.seen.get(t))
            .map(|s| s.receipts - 1)
            .sum();
        format!("longest wait {longest:?}, {repeats} repeated receipts")
    }

    fn missing(&self) -> Vec<&String> {
        self.produced
            .keys()
            .filter(|tag| !self.seen.contains_key(*tag))
            .collect()
    }

    /// The queue and the delivery log, for a failure message.
    async fn queue_state(&self) -> String {
        let jobs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status || ' lock_by=' || coalesce(lock_by, '-') || ' lock_age=' || coalesce((now() - lock_at)::text, '-'), count(*)
             FROM apalis.jobs WHERE status <> 'Done' GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM ingested_events")
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1);
        format!("ingested events {events}; deliveries {rows:?}; unfinished jobs {jobs:?}")
    }

    /// Every delivery row ends DELIVERED, one per event.
    async fn rows_settle(&self) {
        let want = self.produced.len() as i64;
        let deadline = Instant::now() + MARGIN;
        loop {
            let (rows, delivered): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE status = 'DELIVERED') FROM webhook_deliveries",
            )
            .fetch_one(&self.pool)
            .await
            .expect("count");
            if rows == want && delivered == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{rows} delivery rows, {delivered} DELIVERED, for {want} events; {}",
                self.queue_state().await
            );
            crate::common::wait::pause().await;
        }
    }

    async fn ready(&self) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/ready", self.api))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("GET /ready");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn chaos_config(
    pg: &ThrowawayPg,
    broker: &OwnBroker,
    vault: &OwnVault,
    topic: &str,
    publish: &str,
) -> Config {
    let mut config = test_config_for(&pg.url());
    config.kafka.brokers = broker.addr.clone();
    config.kafka.topics = vec![topic.to_owned()];
    config.kafka.topic_regex = String::new();
    config.kafka.publish_topics = crate::common::kafka::one_topic(publish);
    config.worker.time_scale = TIME_SCALE;
    config.worker.secret_retry_secs = 1;
    // A short lease keeps the test short; the bound is the same formula as the defaults' (6 s + 2 s).
    config.worker.lease_ms = 1000;
    config.worker.lease_renew_ms = 250;
    config.worker.lease_rescue_ms = 250;
    use_vault(&mut config, &vault.addr, "root", "chaos");
    // Every delivery reads its signing secret from Vault, so freezing Vault is felt at once.
    config.vault.cache_ttl_secs = 0;
    config
}

async fn produce(producer: FutureProducer, topic: String, events: Vec<Value>) {
    let sends = events.into_iter().enumerate().map(|(i, e)| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&format!("k{i}"))
                        .payload(&e.to_string()),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.expect("produce");
    }
}

/// At its step: restart PostgreSQL (`stop`) after `delay`, in the background, and make the step see `outcome`
/// (an `Err` is the reply the restart took away). Reports how long the server was down on `done`.
fn restart_at_step(
    pg: Arc<ThrowawayPg>,
    stop: Stop,
    delay: Duration,
    lose_reply: bool,
    done: tokio::sync::oneshot::Sender<Duration>,
) -> Hook {
    Box::new(move || {
        Box::pin(async move {
            tokio::spawn(async move {
                // The behaviour under test: the restart lands `delay` into the step.
                tokio::time::sleep(delay).await;
                let down = tokio::task::spawn_blocking(move || pg.restart(stop))
                    .await
                    .expect("restart");
                let _ = done.send(down);
            });
            if lose_reply {
                Err("injected: the connection died with the restart".to_owned())
            } else {
                Ok(())
            }
        })
    })
}

/// Catches issue 15: deliveries left PENDING forever after a PostgreSQL restart, when a claim (or a flush)
/// committed on the server but its reply was lost, and the live worker never looked at those jobs again. Also
/// catches /ready claiming the database is up while it is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_24_times_at_each_step_of_the_worker_cycle_loses_no_delivery_within_the_lease_bound()
 {
    const STEPS: [Step; 4] = [
        Step::Claimed,
        Step::Ran,
        Step::BeforeCommit,
        Step::Committed,
    ];
    const DELAYS_MS: [u64; 4] = [0, 40, 150, 400];
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut h = Harness::start().await;
    h.produce_burst(h.bound + MARGIN).await;
    h.all_delivered("warm-up").await;

    for round in 0..24 {
        let step = STEPS[round % 4];
        // Each step meets both a lost reply and a real failure, after each delay, with both stop modes.
        let lose_reply = (round / 4) % 2 == 0;
        let delay = Duration::from_millis(DELAYS_MS[(round / 4 + round) % 4]);
        let stop = if round % 3 == 2 {
            Stop::Immediate
        } else {
            Stop::Fast
        };
        let (done, restarted) = tokio::sync::oneshot::channel();
        h.faults.arm(
            step,
            restart_at_step(h.pg.clone(), stop, delay, lose_reply, done),
        );
        // An outage takes a few seconds at most; its length is added to the allowance below.
        let began = Instant::now();
        let tags = h.produce_burst(Duration::from_secs(60)).await;
        assert_eq!(
            h.faults.next_fired(MARGIN).await,
            Some(step),
            "round {round}"
        );
        let down = tokio::time::timeout(Duration::from_secs(60), restarted)
            .await
            .expect("the restart finished")
            .expect("restart reported");
        let allowed = (Instant::now() - began) + h.bound + MARGIN;
        for tag in &tags {
            if let Some((_, limit)) = h.produced.get_mut(tag) {
                *limit = allowed;
            }
        }
        let phase = format!(
            "round {round} ({step:?}, lose reply {lose_reply}, {stop:?} after {delay:?}, down {down:?})"
        );
        h.all_delivered(&phase).await;
        eprintln!("{phase}: {}", h.summary(&tags));
    }

    // /ready says the database is down while it is, and up again once it is back.
    h.pg.stop_server(Stop::Fast);
    let (status, body) = h.ready().await;
    assert_eq!((status, &body["postgres"]), (503, &json!(false)), "{body}");
    tokio::task::spawn_blocking({
        let pg = h.pg.clone();
        move || pg.start_server()
    })
    .await
    .expect("start");
    let deadline = Instant::now() + MARGIN;
    while h.ready().await.0 != 200 {
        assert!(Instant::now() < deadline, "/ready never recovered");
        crate::common::wait::pause().await;
    }
    h.rows_settle().await;
}

/// Catches: deliveries lost, duplicated under another id, or stuck when Vault or the broker stops answering (frozen:
/// a restarted in-memory server would lose its data) or the receiver restarts, each at the moment jobs were claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_and_tansu_frozen_and_the_receiver_restarted_mid_burst_lose_no_delivery() {
    // Secret reads time out after 1 s and are retried 1 s later; refused sends are retried 1 s then 5 s later.
    const SECRET_WAIT: Duration = Duration::from_secs(2);
    const RETRIES: Duration = Duration::from_secs(6);
    let outage = Duration::from_secs(3);
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut h = Harness::start().await;
    h.produce_burst(h.bound + MARGIN).await;
    h.all_delivered("warm-up").await;

    let mut paused = h.faults.pause_once(Step::Claimed);
    let tags = h
        .produce_burst(outage + SECRET_WAIT + h.bound + MARGIN)
        .await;
    paused.reached(MARGIN).await;
    h.vault.freeze();
    paused.resume(Ok(()));
    // The behaviour under test: an outage of this length.
    tokio::time::sleep(outage).await;
    h.vault.thaw();
    h.all_delivered("vault frozen").await;
    eprintln!("vault frozen {outage:?}: {}", h.summary(&tags));

    let mut paused = h.faults.pause_once(Step::Claimed);
    let tags = h.produce_burst(outage + h.bound + MARGIN).await;
    paused.reached(MARGIN).await;
    h.broker.freeze();
    paused.resume(Ok(()));
    // Produced while the broker is frozen: the producer waits for it, ingest reads them after.
    let (during_tags, during) = h.burst(outage + h.bound + MARGIN);
    let producing = tokio::spawn(produce(h.producer.clone(), h.topic.clone(), during));
    // The behaviour under test: an outage of this length.
    tokio::time::sleep(outage).await;
    h.broker.thaw();
    producing.await.expect("produce");
    h.all_delivered("tansu frozen").await;
    eprintln!(
        "tansu frozen {outage:?}: {}",
        h.summary(&[tags, during_tags].concat())
    );

    let mut paused = h.faults.pause_once(Step::Claimed);
    let tags = h.produce_burst(outage + RETRIES + h.bound + MARGIN).await;
    paused.reached(MARGIN).await;
    h.receiver.stop().await;
    paused.resume(Ok(()));
    // The behaviour under test: an outage of this length.
    tokio::time::sleep(outage).await;
    h.receiver.restart().await;
    h.all_delivered("receiver restarted").await;
    eprintln!("receiver down {outage:?}: {}", h.summary(&tags));
    h.rows_settle().await;
}
