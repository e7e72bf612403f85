//! Test harness: a fresh database per test, the app built through `startup`, a programmable receiver.

#![allow(dead_code)]

pub mod broker;
pub mod browser;
pub mod channels;
pub mod chromedriver;
pub mod client;
pub mod faults;
pub mod kafka;
pub mod otlp;
pub mod pg_cluster;
pub mod pg_proxy;
pub mod process;
pub mod receiver;
pub mod slow;
pub mod vault;
pub mod wait;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use integration_service::config::{Config, Secret};
use integration_service::startup::{Application, Roles};
use jobs::worker::Worker;
use jobs::{Clock, ManualClock};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use client::Api;
pub use receiver::Receiver;

/// Operator token every test app accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Where tests create their databases (the script may point elsewhere).
pub fn admin_database_url() -> String {
    std::env::var("SS3_TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped after it.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        init_test_tracing();
        let name = format!("itest_{}", Uuid::new_v4().simple());
        let admin = PgPool::connect(&admin_database_url())
            .await
            .expect("connect to the test Postgres (is it running?)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let base = admin_database_url();
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/').map(|(b, _)| b).unwrap_or(&base)
        );
        Self { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = PgPool::connect(&admin_database_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A config for tests: fresh database, operator token, embedded secrets with a random key, no waits between attempts.
pub fn test_config(db: &TestDb) -> Config {
    test_config_for(&db.url)
}

/// `test_config` for a database the test manages itself (e.g. on a throwaway cluster).
pub fn test_config_for(database_url: &str) -> Config {
    let mut config = Config::defaults().expect("defaults parse");
    config.database_url = Secret::new(database_url);
    config.admin_token = Secret::new(ADMIN_TOKEN);
    config.max_db_connections = 10;
    let key: [u8; 32] = rand::random();
    config.secrets.master_key = Secret::new(base64_encode(&key));
    config.worker.time_scale = 0.0;
    config.worker.poll_interval_ms = 50;
    config.worker.idle_poll_ms = 1000;
    config.listen_addr = "127.0.0.1:0".parse().expect("addr");
    // Behaviour, not cost, is under test: the cheapest bcrypt cost keeps the suite fast.
    config.credentials.bcrypt_cost = 4;
    // Failed checks answer after this floor (500 ms by default); short here, long enough to be exercised.
    config.credentials.failure_delay_ms = 50;
    config.credentials.last_used_flush_secs = 1;
    config
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fixed start time for clock-driven tests.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("valid time")
}

/// When the five attempts of a job that fails every time are due, from a first attempt at [`t0`]: the 1m, 5m,
/// 30m and 2h retry schedule, counted from the attempt before.
pub fn due_times() -> [DateTime<Utc>; 5] {
    [0, 1, 6, 36, 156].map(|minutes| t0() + chrono::Duration::minutes(minutes))
}

/// The service under test with its API served on an ephemeral port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub clock: ManualClock,
    pub app: Arc<Application>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub db: Arc<TestDb>,
    /// The task running the app; `stop` awaits it.
    running: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Default test config, manual clock at `t0()`.
    pub async fn spawn() -> Self {
        let db = TestDb::create().await;
        let config = test_config(&db);
        Self::spawn_with(db, config, Roles::API).await
    }

    /// A custom config and roles (the worker role runs the real loop; otherwise tests drive workers by hand).
    pub async fn spawn_with(db: TestDb, config: Config, roles: Roles) -> Self {
        let clock = ManualClock::new(t0());
        Self::spawn_with_clock(Arc::new(db), config, roles, clock.clone(), Arc::new(clock)).await
    }

    /// An API-only app on a fresh database, its clock manual at `t0`, and the environment of worker processes that
    /// join it (`extra` added to it).
    pub async fn api_only(
        extra: &[(&str, &str)],
    ) -> (Self, std::collections::BTreeMap<String, String>) {
        let db = TestDb::create().await;
        let config = test_config(&db);
        let mut env: std::collections::BTreeMap<String, String> = [
            ("DATABASE_URL", db.url.clone()),
            ("SS3_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            (
                "SS3_SECRETS__MASTER_KEY",
                config.secrets.master_key.expose().to_owned(),
            ),
            ("SS3_WORKER__POLL_INTERVAL_MS", "50".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let app = Self::spawn_with_clock(
            Arc::new(db),
            config,
            Roles::API,
            ManualClock::new(t0()),
            Arc::new(jobs::SystemClock),
        )
        .await;
        (app, env)
    }

    /// A custom config and roles with a clock of the test's choosing (`clock` is the handle the test moves; `used`
    /// is what the app reads, which may be a different clock).
    pub async fn spawn_with_clock(
        db: Arc<TestDb>,
        config: Config,
        roles: Roles,
        clock: ManualClock,
        used: Arc<dyn Clock>,
    ) -> Self {
        init_test_tracing();
        let app = Application::build(config, used)
            .await
            .expect("application builds");
        Self::spawn_built(db, app, roles, clock).await
    }

    /// Like `spawn_with`, with the workers consulting `faults`. The clock is manual (at `t0()`) when
    /// `config.worker.time_scale` is 0, as in `test_config`; otherwise real time scaled by it.
    pub async fn spawn_with_faults(
        db: Arc<TestDb>,
        config: Config,
        roles: Roles,
        faults: Arc<dyn jobs::worker::Faults>,
    ) -> Self {
        init_test_tracing();
        let manual = ManualClock::new(t0());
        let used: Arc<dyn Clock> = if config.worker.time_scale > 0.0 {
            Arc::new(jobs::ScaledClock::new(config.worker.time_scale))
        } else {
            Arc::new(manual.clone())
        };
        let app = Application::build(config, used)
            .await
            .expect("application builds")
            .with_worker_faults(faults);
        Self::spawn_built(db, app, roles, manual).await
    }

    async fn spawn_built(
        db: Arc<TestDb>,
        app: Application,
        roles: Roles,
        clock: ManualClock,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = app.state().pool.clone();
        let shutdown = CancellationToken::new();
        let app = Arc::new(app);
        let runner = Arc::clone(&app);
        let token = shutdown.clone();
        let running = tokio::spawn(async move {
            runner
                .run(roles, Some(listener), token)
                .await
                .expect("app runs")
        });
        Self {
            addr,
            pool,
            clock,
            app,
            http: reqwest::Client::new(),
            shutdown,
            db,
            running: Some(running),
        }
    }

    /// Stop the app as a process would on SIGTERM and wait until it has (workers drained, listener closed). The
    /// test database stays until the `TestApp` is dropped, so a second app can start on it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.await.expect("the app stopped without panicking");
        }
    }

    /// A worker of this app, registered, to drive by hand.
    pub async fn worker(&self, name: &str) -> Worker {
        let worker = self.app.worker(name);
        worker.register().await.expect("register worker");
        worker
    }

    /// Two seconds before `at` the due job is not run, only re-queued for its time; `what` names the attempt.
    pub async fn assert_not_run_early(&self, worker: &Worker, at: DateTime<Utc>, what: &str) {
        self.clock.set(at - chrono::Duration::seconds(2));
        let early = worker.run_once().await.expect("run");
        assert_eq!((early.jobs, early.not_yet_due), (1, 1), "{what} ran early");
    }

    /// At `at` exactly one job runs (the attempt `what` names).
    pub async fn assert_runs_at(&self, worker: &Worker, at: DateTime<Utc>, what: &str) {
        self.clock.set(at);
        let ran = worker.run_pending_jobs().await.expect("run");
        assert_eq!(ran, 1, "{what} at its time");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request as an operator acting on `store`.
    pub fn as_store(
        &self,
        method: reqwest::Method,
        path: &str,
        store: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-ss3-store-id", store)
    }

    /// The typed API client of this app, as an operator.
    pub fn api(&self) -> Api {
        Api::new(format!("http://{}", self.addr), ADMIN_TOKEN)
    }

    /// Create a subscription; returns its id and signing secret.
    pub async fn subscribe(&self, store: &str, target: &str, events: &[&str]) -> (Uuid, String) {
        let created = self.api().create_subscription(store, target, events).await;
        (created.subscription.subscription_id, created.signing_secret)
    }

    /// POST `body` to `path` as `store`, expecting a problem document: its status and the document.
    pub async fn post_refused(&self, path: &str, store: &str, body: &Value) -> (u16, Value) {
        let response = self
            .as_store(reqwest::Method::POST, path, store)
            .json(body)
            .send()
            .await
            .expect("request");
        problem(response).await
    }

    /// POST /events as an operator.
    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/events"))
            .bearer_auth(ADMIN_TOKEN)
            .json(event)
            .send()
            .await
            .expect("request")
    }

    /// POST /events and return the first delivery it created.
    pub async fn first_delivery(&self, event: &Value) -> String {
        let result = self.api().ingest(event).await;
        let first = result.delivery_ids.first();
        first.expect("the event created a delivery").to_string()
    }

    /// A delivery as the API shows it.
    pub async fn delivery(&self, store: &str, id: &str) -> client::Delivery {
        self.api().delivery(store, id).await
    }

    /// Count rows of a query returning one bigint.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Test logs: to the test's output when `TEST_LOG` is set (its value is the filter, e.g. `TEST_LOG=debug`, or
/// `TEST_LOG=1` for `info`); otherwise no subscriber is installed and events go nowhere. Installed once per test
/// binary, by `TestDb::create` and the `TestApp` constructors.
pub fn init_test_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(filter) = std::env::var("TEST_LOG") else {
            return;
        };
        let filter = match filter.as_str() {
            "" | "1" | "true" => "info,sqlx=warn,rdkafka=warn".to_owned(),
            other => other.to_owned(),
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// A domain event in the documented envelope.
pub fn event(event_type: &str, store: &str, data: Value) -> Value {
    json!({
        "eventId": Uuid::new_v4(),
        "eventType": event_type,
        "storeId": store,
        "occurredAt": "2026-11-23T10:00:00Z",
        "data": data,
    })
}

/// A response that must be problem JSON: its status and document (the body is shown if the type is wrong).
pub async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "status {status}: {body}"
    );
    (status, serde_json::from_str(&body).expect("problem JSON"))
}
