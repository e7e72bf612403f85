//! Start-up configuration from a real OpenBao: the database login at `<mount>/<prefix>` (`db.url`, `db.username`,
//! `db.password`) and the Kafka brokers at `<mount>/<shared path>`, the environment overriding them, and a rotated
//! database password picked up without a restart, on a Postgres cluster that checks passwords (scram-sha-256).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

use crate::common::pg_cluster::ThrowawayPg;
use crate::common::process::{ServiceProcess, cluster_env};
use crate::common::vault::{client, shared};
use crate::common::{ADMIN_TOKEN, Api};

const WITHIN: Duration = Duration::from_secs(30);

async fn put(addr: &str, token: &str, path: &str, fields: &BTreeMap<&str, String>) {
    vaultrs::kv2::set(&client(addr, token), "ss3/kv", path, fields)
        .await
        .expect("write to Vault");
}

/// `POST /subscriptions` through the service: it needs the database.
async fn subscribe(api: &Api, store: &str) -> reqwest::StatusCode {
    api.request(Method::POST, "/subscriptions", store)
        .json(&json!({"name": "vault", "targetUrl": "http://127.0.0.1:9/", "events": ["order.placed"]}))
        .send()
        .await
        .expect("request sent")
        .status()
}

/// Close every connection the service has open.
async fn terminate_connections(admin: &mut sqlx::PgConnection) {
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'svc'")
        .execute(admin)
        .await
        .expect("terminate the service's connections");
}

/// Catches: the database login or the brokers not read from Vault at the specified paths; Vault overriding the
/// environment (or the override not logged, or logged with the secret); a rotated password needing a restart, or a refused login answered 500.
#[tokio::test]
async fn the_service_starts_with_the_database_login_in_vault_and_follows_its_rotation() {
    let (addr, token) = shared();
    let pg = ThrowawayPg::start_checking_passwords();
    let mut admin = sqlx::PgConnection::connect(&pg.url())
        .await
        .expect("superuser connects with its password");
    let (first, second) = ("first-Pa$$word", "second-Pa$$word");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE svc LOGIN PASSWORD '{first}'"
    )))
    .execute(&mut admin)
    .await
    .expect("create role");
    sqlx::query("CREATE DATABASE ss3 OWNER svc")
        .execute(&mut admin)
        .await
        .expect("create database");

    let prefix = format!("it-{}", Uuid::new_v4().simple());
    let shared_path = format!("{prefix}-shared");
    let login = |password: &str| {
        BTreeMap::from([
            (
                "db.url",
                format!("jdbc:postgresql://127.0.0.1:{}/ss3", pg.port),
            ),
            ("db.username", "svc".to_owned()),
            ("db.password", password.to_owned()),
        ])
    };
    put(&addr, &token, &prefix, &login(first)).await;
    let brokers = BTreeMap::from([("kafka.bootstrap.servers", "127.0.0.1:9".to_owned())]);
    put(&addr, &token, &shared_path, &brokers).await;

    let mut env = cluster_env("", &[]);
    env.remove("DATABASE_URL");
    env.extend(
        [
            ("VAULT_ADDR", addr.clone()),
            ("VAULT_TOKEN", token.clone()),
            ("SS3_VAULT__PREFIX", prefix.clone()),
            ("SS3_VAULT__SHARED_PATH", shared_path),
            ("SS3_VAULT__REFRESH_SECS", "1".to_owned()),
            // The environment wins over Vault: no Kafka here.
            ("SS3_KAFKA__BROKERS", String::new()),
            (
                "RUST_LOG",
                "warn,integration_service::config=info,integration_service::startup=info"
                    .to_owned(),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let service = ServiceProcess::spawn("api,worker", &env, "vault-startup");
    let api = Api::new(service.api_url(WITHIN).await, ADMIN_TOKEN);
    assert_eq!(subscribe(&api, "store-v").await, 201);

    let started = service
        .log_line("start-up configuration read from Vault", WITHIN)
        .await;
    assert!(
        started.contains("from_vault=database_url, kafka.brokers"),
        "{started}"
    );
    assert!(started.contains("overridden=kafka.brokers"), "{started}");
    assert!(!service.log().contains(first), "a password was logged");

    // Rotate: Postgres first (as an operator would), then Vault. In between, a new connection is refused, and the
    // API says the database is unavailable (503), not that it failed (500).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE svc PASSWORD '{second}'"
    )))
    .execute(&mut admin)
    .await
    .expect("rotate in Postgres");
    terminate_connections(&mut admin).await;
    let refused = api
        .request(Method::GET, "/subscriptions", "store-v")
        .send()
        .await
        .expect("request sent");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.expect("problem JSON");
    assert_eq!(problem["code"], "database_unavailable");

    put(&addr, &token, &prefix, &login(second)).await;
    service
        .log_line("database login changed in Vault", WITHIN)
        .await;
    // Whatever the service does next needs a new login.
    terminate_connections(&mut admin).await;
    for store in ["store-w", "store-x", "store-y"] {
        assert_eq!(subscribe(&api, store).await, 201, "after the rotation");
    }
    let connected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'svc'")
            .fetch_one(&mut admin)
            .await
            .expect("count");
    assert!(connected > 0, "the service connected again");
    assert!(!service.log().contains(second), "a password was logged");

    // The passwords are really checked: the old one no longer logs in.
    let old = format!(
        "postgres://svc:{}@127.0.0.1:{}/ss3",
        "first-Pa%24%24word", pg.port
    );
    assert!(sqlx::PgConnection::connect(&old).await.is_err());
}
