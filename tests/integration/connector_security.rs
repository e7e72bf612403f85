//! Connector credentials stay write-only: endpoints are deployment configuration (no API call can point a config's
//! credentials at another host), channel calls obey the production-mode address policy, and deleting a connector
//! erases its credentials only once the deletion has committed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::channels::*;
use crate::common::{TestApp, TestDb, test_config};
use integration_service::config::{Config, Mode};
use integration_service::startup::Roles;

const STORE: &str = "store-sec";

fn amazon() -> Value {
    json!({
        "connectorType": "amazon",
        "displayName": "Amazon US",
        "settings": {"sellerId": "A2SELLER", "marketplaceId": "ATVPDKIKX0DER"},
        "pollIntervalSecs": 0,
        "credentials": {"apiKey": AMAZON_CLIENT_ID, "apiSecret": AMAZON_CLIENT_SECRET, "refreshToken": AMAZON_REFRESH_TOKEN},
    })
}

async fn app_with(fake: &FakeChannels, change: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    fake.configure(&mut config);
    change(&mut config);
    TestApp::spawn_with(db, config, Roles::API).await
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = app.as_store(method, path, STORE);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_id(app: &TestApp, body: &Value) -> String {
    let created = app.api().create_connector(STORE, body).await;
    created.config_id.to_string()
}

/// Catches: an operator reading write-only credentials back by pointing `lwaEndpoint` (or any endpoint setting)
/// at their own server and pressing "test connection" (issue 9, item 5).
#[tokio::test]
async fn no_connector_setting_can_send_credentials_to_another_host() {
    let fake = FakeChannels::start().await;
    let attacker = FakeChannels::start().await;
    let app = app_with(&fake, |_| {}).await;
    let evil = attacker.url();
    for (kind, key, url) in [
        ("amazon", "lwaEndpoint", format!("{evil}/auth/o2/token")),
        ("amazon", "endpoint", evil.clone()),
        ("ebay", "endpoint", evil.clone()),
        (
            "ebay",
            "tokenUrl",
            format!("{evil}/identity/v1/oauth2/token"),
        ),
        ("google_shopping", "endpoint", evil.clone()),
        ("google_shopping", "tokenUrl", format!("{evil}/token")),
    ] {
        let mut body = amazon();
        body["connectorType"] = json!(kind);
        body["settings"] =
            json!({"sellerId": "S", "marketplaceId": "M", "merchantId": "1", "dataSourceId": "2"});
        body["settings"][key] = json!(url);
        let (status, problem) = send(&app, Method::POST, "/connectors", Some(&body)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("invalid_settings")),
            "{kind}.{key}: {problem}"
        );
    }
    let id = create_id(&app, &amazon()).await;
    let mut changed = amazon()["settings"].clone();
    changed["lwaEndpoint"] = json!(format!("{evil}/auth/o2/token"));
    let path = format!("/connectors/{id}");
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&json!({"settings": changed})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_settings"))
    );
    // A config stored before endpoints left the settings: its old URLs are ignored.
    sqlx::query("UPDATE connector_configs SET settings = settings || $1")
        .bind(json!({"lwaEndpoint": format!("{evil}/auth/o2/token"), "endpoint": evil}))
        .execute(&app.pool)
        .await
        .expect("plant a stored endpoint");
    let (status, tested) = send(&app, Method::POST, &format!("{path}/test"), None).await;
    assert_eq!((status, &tested["ok"]), (200, &json!(true)), "{tested}");
    assert_eq!(
        fake.token_calls().len(),
        1,
        "the configured LWA endpoint was used"
    );
    assert!(
        attacker.calls().is_empty(),
        "credentials reached another host: {:?}",
        attacker.calls()
    );
}

/// Catches: channel calls reaching loopback in production mode (they bypassed the webhook target policy), by an
/// IP literal or by a name resolving to one; an allow-listed host still works.
#[tokio::test]
async fn in_production_mode_channel_calls_obey_the_target_policy() {
    let fake = FakeChannels::start().await;
    let port = fake.addr.port();
    for (base, allowed) in [
        (format!("http://127.0.0.1:{port}"), vec![]),
        (format!("http://localhost:{port}"), vec![]),
        (
            format!("http://127.0.0.1:{port}"),
            vec!["127.0.0.1".to_owned()],
        ),
    ] {
        let app = app_with(&fake, |c| {
            c.mode = Mode::Production;
            c.connectors.amazon.lwa_endpoint = format!("{base}/auth/o2/token");
            c.connectors.amazon.sp_api_na = base.clone();
            c.connectors.allowed_private_hosts = allowed.clone();
        })
        .await;
        fake.clear_calls();
        let id = create_id(&app, &amazon()).await;
        let (_, tested) = send(&app, Method::POST, &format!("/connectors/{id}/test"), None).await;
        if allowed.is_empty() {
            assert_eq!(tested["ok"], false, "{base}: {tested}");
            let detail = tested["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains("Loopback") || detail.contains("non-public"),
                "{detail}"
            );
            assert!(
                fake.calls().is_empty(),
                "{base} was reached: {:?}",
                fake.calls()
            );
        } else {
            assert_eq!(tested["ok"], true, "allow-listed {base}: {tested}");
        }
    }
}

async fn deleted_and_secrets(app: &TestApp, id: &str) -> (bool, i64) {
    let id: uuid::Uuid = id.parse().expect("uuid");
    let deleted: bool = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM connector_configs WHERE config_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("config row");
    let secrets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM encrypted_secrets WHERE path LIKE $1")
            .bind(format!("connector/{id}/%"))
            .fetch_one(&app.pool)
            .await
            .expect("count");
    (deleted, secrets)
}

/// Catches: credentials erased inside the delete's transaction, so a transaction that then fails to commit (a
/// crash, a failover, a cut connection) leaves a live connector whose credentials are gone (issue 9, item 9).
#[tokio::test]
async fn a_deletion_whose_transaction_dies_never_leaves_a_live_connector_without_credentials() {
    use sqlx::Connection;
    let fake = FakeChannels::start().await;
    let app = app_with(&fake, |_| {}).await;
    let id = create_id(&app, &amazon()).await;
    assert_eq!(deleted_and_secrets(&app, &id).await, (false, 3));
    // Hold the credentials' rows, so the erasure waits where the test can see it.
    let mut lock = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut lock)
        .await
        .expect("begin");
    sqlx::query("SELECT 1 FROM encrypted_secrets WHERE path LIKE $1 FOR UPDATE")
        .bind(format!("connector/{id}/%"))
        .fetch_all(&mut lock)
        .await
        .expect("lock");
    let request = app.as_store(Method::DELETE, &format!("/connectors/{id}"), STORE);
    let deleting = tokio::spawn(request.send());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut lock)
        .await
        .expect("activity");
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the erasure never started"
        );
        crate::common::wait::pause().await;
    }
    // Whatever transaction the deletion still has open dies now.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .execute(&mut lock)
    .await
    .expect("terminate");
    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("release");
    let status = deleting.await.expect("join").expect("response").status();
    let (deleted, secrets) = deleted_and_secrets(&app, &id).await;
    assert!(
        deleted || secrets == 3,
        "a live connector lost its credentials (DELETE answered {status})"
    );
    assert_eq!((status.as_u16(), deleted, secrets), (204, true, 0));
}

/// Catches: a secret-store failure during deletion either undoing the deletion (the connector stays live) or
/// orphaning the credentials with no way to erase them later.
#[tokio::test]
async fn a_failed_erasure_keeps_the_connector_deleted_and_a_repeated_delete_erases() {
    use crate::common::vault::{OwnVault, client, use_vault};
    let vault = OwnVault::start().await;
    let fake = FakeChannels::start().await;
    let app = app_with(&fake, |c| use_vault(c, &vault.addr, "root", "it-erase")).await;
    let id = create_id(&app, &amazon()).await;
    let path = format!("/connectors/{id}");
    vault.freeze();
    let (status, problem) = send(&app, Method::DELETE, &path, None).await;
    vault.thaw();
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("secret_store_unavailable")),
        "{problem}"
    );
    let (status, _) = send(&app, Method::GET, &path, None).await;
    assert_eq!(
        status, 404,
        "the connector is deleted even though its credentials are not erased yet"
    );
    let stored = |field: &'static str| {
        let (addr, id) = (vault.addr.clone(), id.clone());
        async move {
            vaultrs::kv2::read::<Value>(
                &client(&addr, "root"),
                "ss3/kv",
                &format!("it-erase/connector/{id}/{field}"),
            )
            .await
            .is_ok()
        }
    };
    assert!(
        stored("refresh-token").await,
        "still in Vault, awaiting erasure"
    );
    let (status, _) = send(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "the repeated DELETE erased them");
    for field in ["api-key", "api-secret", "refresh-token"] {
        assert!(!stored(field).await, "{field} is still in Vault");
    }
    let (status, _) = send(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "nothing left to delete");
}
