//! Secrets in a real OpenBao (Vault API): storage layout, signing with them, Vault outages, AppRole, migration.

use std::time::Duration;

use integration_service::secrets::SecretStore;
use integration_service::secrets::vault::VaultSecretStore;
use integration_service::startup::Roles;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use workflows::signing::verify_ss3;

use crate::common::client::JsonAnswer;
use crate::common::vault::{OwnVault, client, read_raw, shared, use_vault};
use crate::common::{Receiver, TestApp, TestDb, event, test_config};

const WAIT: Duration = Duration::from_secs(15);

fn prefix() -> String {
    format!("it-{}", Uuid::new_v4().simple())
}

/// Catches: secrets written elsewhere than the documented path, or a rotation not read back.
#[tokio::test]
async fn a_signing_secret_is_written_read_and_rotated_at_the_documented_vault_path() {
    let (addr, token) = shared();
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    let prefix = prefix();
    use_vault(&mut config, &addr, &token, &prefix);
    let store = VaultSecretStore::connect(&config.vault)
        .await
        .expect("connect");
    let id = Uuid::new_v4();
    let path = format!("webhook/{id}/secret");
    assert_eq!(store.get(&path).await.expect("get"), None);
    store.put(&path, "whsec_first").await.expect("put");
    assert_eq!(
        store.get(&path).await.expect("get").as_deref(),
        Some("whsec_first")
    );
    store.put(&path, "whsec_rotated").await.expect("rotate");
    assert_eq!(
        store.get(&path).await.expect("get").as_deref(),
        Some("whsec_rotated")
    );
    assert_eq!(
        read_raw(&addr, &token, &format!("{prefix}/webhook/{id}/secret")).await,
        "whsec_rotated"
    );
    store.delete(&path).await.expect("delete");
    assert_eq!(store.get(&path).await.expect("get"), None);
}

/// Catches: the delivery worker signing with a secret from anywhere but Vault.
#[tokio::test]
async fn a_delivery_is_signed_with_the_secret_held_in_vault() {
    let (addr, token) = shared();
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    let prefix = prefix();
    use_vault(&mut config, &addr, &token, &prefix);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, secret) = app.subscribe("store-v", &receiver.url(), &["*"]).await;
    assert_eq!(
        app.count("SELECT count(*) FROM encrypted_secrets").await,
        0,
        "nothing stored locally"
    );
    assert_eq!(
        read_raw(&addr, &token, &format!("{prefix}/webhook/{sub}/secret")).await,
        secret
    );
    app.post_event(&event("order.placed", "store-v", json!({})))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let got = receiver.next(WAIT).await;
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    let ready: Value = app.http.get(app.url("/ready")).json_answer().await;
    assert_eq!(ready["secrets"], true);
}

/// Catches: a Vault outage burning retry attempts (or dead-lettering) instead of waiting.
#[tokio::test]
async fn while_vault_is_unreachable_a_delivery_waits_without_using_an_attempt_then_proceeds() {
    let vault = OwnVault::start().await;
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    use_vault(&mut config, &vault.addr, "root", &prefix());
    config.worker.secret_retry_secs = 1;
    config.worker.time_scale = 1.0;
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let mut receiver = Receiver::start(&[]).await;
    let (_, secret) = app.subscribe("store-v", &receiver.url(), &["*"]).await;
    let id = app
        .first_delivery(&event("order.placed", "store-v", json!({})))
        .await;

    vault.freeze();
    let worker = app.worker("w").await;
    worker.run_pending_jobs().await.expect("run");
    receiver.expect_silence(Duration::from_millis(200)).await;
    let waiting = app.delivery("store-v", &id).await;
    assert_eq!(waiting.status, "PENDING");
    assert_eq!(waiting.attempt_number, 0, "no attempt was used");
    assert!(
        waiting
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("deferred"),
        "{waiting:?}"
    );
    let ready = app.http.get(app.url("/ready")).send().await.expect("req");
    assert_eq!(ready.status(), 503);

    vault.thaw();
    let mut delivered = false;
    for _ in 0..120 {
        worker.run_once().await.expect("run");
        if app.delivery("store-v", &id).await.status == "DELIVERED" {
            delivered = true;
            break;
        }
        crate::common::wait::pause().await;
    }
    assert!(delivered, "the delivery went through once Vault was back");
    let got = receiver.next(WAIT).await;
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    assert_eq!(app.delivery("store-v", &id).await.attempts.len(), 1);
}

/// Catches: AppRole login not working (the production auth method).
#[tokio::test]
async fn the_service_logs_in_with_approle() {
    let vault = OwnVault::start().await;
    let root = client(&vault.addr, "root");
    let mut opts = vaultrs::api::sys::requests::EnableAuthRequest::builder();
    vaultrs::sys::auth::enable(&root, "approle", "approle", Some(&mut opts))
        .await
        .expect("enable approle");
    vaultrs::sys::policy::set(
        &root,
        "integration-service",
        r#"path "ss3/kv/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    )
    .await
    .expect("policy");
    let mut role = vaultrs::api::auth::approle::requests::SetAppRoleRequest::builder();
    role.token_policies(vec!["integration-service".to_owned()])
        .token_ttl("1h");
    vaultrs::auth::approle::role::set(&root, "approle", "integration-service", Some(&mut role))
        .await
        .expect("role");
    let role_id = vaultrs::auth::approle::role::read_id(&root, "approle", "integration-service")
        .await
        .expect("role id")
        .role_id;
    let secret_id = vaultrs::auth::approle::role::secret::generate(
        &root,
        "approle",
        "integration-service",
        None,
    )
    .await
    .expect("secret id")
    .secret_id;

    let db = TestDb::create().await;
    let mut config = test_config(&db);
    use_vault(&mut config, &vault.addr, "", &prefix());
    config.vault.role_id = integration_service::config::Secret::new(role_id);
    config.vault.secret_id = integration_service::config::Secret::new(secret_id);
    let store = VaultSecretStore::connect(&config.vault)
        .await
        .expect("AppRole login");
    store
        .put("webhook/x/secret", "whsec_approle")
        .await
        .expect("put with the AppRole token");
    assert_eq!(
        store.get("webhook/x/secret").await.expect("get").as_deref(),
        Some("whsec_approle")
    );
}

/// Catches: the migration command losing or changing secrets.
#[tokio::test]
async fn copy_to_vault_moves_embedded_secrets_and_deliveries_still_verify() {
    let (addr, token) = shared();
    let db = std::sync::Arc::new(TestDb::create().await);
    let embedded_config = test_config(&db);
    let api = Roles::API;
    let clock = jobs::ManualClock::new(crate::common::t0());
    let mut embedded = TestApp::spawn_with_clock(
        db.clone(),
        embedded_config.clone(),
        api,
        clock.clone(),
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let mut receiver = Receiver::start(&[]).await;
    let (_, secret) = embedded.subscribe("store-m", &receiver.url(), &["*"]).await;
    embedded.stop().await;

    let mut vault_config = embedded_config;
    use_vault(&mut vault_config, &addr, &token, &prefix());
    let copied = integration_service::secrets::migrate::copy_embedded_to_vault(&vault_config)
        .await
        .expect("copy");
    assert_eq!(copied, 1);
    let on_vault = TestApp::spawn_with_clock(
        db.clone(),
        vault_config,
        api,
        clock.clone(),
        std::sync::Arc::new(clock),
    )
    .await;
    on_vault
        .post_event(&event("order.placed", "store-m", json!({})))
        .await;
    on_vault
        .worker("w")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    let got = receiver.next(WAIT).await;
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    let _ = on_vault
        .as_store(Method::GET, "/subscriptions", "store-m")
        .send()
        .await;
}

/// Catches: a secret rotated in Vault never reaching the signer (a cache without expiry).
#[tokio::test]
async fn a_secret_rotated_in_vault_is_used_once_the_cache_ttl_has_passed() {
    let (addr, token) = shared();
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    let prefix = prefix();
    use_vault(&mut config, &addr, &token, &prefix);
    config.vault.cache_ttl_secs = 1;
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let mut receiver = Receiver::start(&[]).await;
    let (sub, old) = app.subscribe("store-r", &receiver.url(), &["*"]).await;
    let worker = app.worker("w").await;
    app.post_event(&event("order.placed", "store-r", json!({})))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let first = receiver.next(WAIT).await;
    assert_eq!(
        verify_ss3(&old, &first.body, first.header("x-ss3-signature")),
        Ok(())
    );

    // Rotated directly in Vault (e.g. by an operator), not through this service.
    let new = "whsec_cm90YXRlZC1pbi12YXVsdC1ieS1hbi1vcGVyYXRvcg==";
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        value: &'a str,
    }
    vaultrs::kv2::set(
        &client(&addr, &token),
        "ss3/kv",
        &format!("{prefix}/webhook/{sub}/secret"),
        &Stored { value: new },
    )
    .await
    .expect("rotate");
    // The behaviour under test: the secret cache entry (1 s TTL) expires, so the next read goes to Vault.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.post_event(&event("order.placed", "store-r", json!({})))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let second = receiver.next(WAIT).await;
    assert_eq!(
        verify_ss3(new, &second.body, second.header("x-ss3-signature")),
        Ok(()),
        "signed with the rotated secret"
    );
}

/// Catches: a short-lived Vault token expiring under the service (renewal not running).
#[tokio::test]
async fn a_short_lived_vault_token_is_renewed_before_it_expires() {
    let vault = OwnVault::start().await;
    let root = client(&vault.addr, "root");
    let mut request = vaultrs::api::token::requests::CreateTokenRequest::builder();
    request
        .ttl("8s")
        .renewable(true)
        .policies(vec!["root".to_owned()]);
    let short = vaultrs::token::new(&root, Some(&mut request))
        .await
        .expect("token")
        .client_token;
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    use_vault(&mut config, &vault.addr, &short, &prefix());
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    // The behaviour under test: time past the token's original TTL, where only renewal keeps it valid.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let receiver = Receiver::start(&[]).await;
    // Writing a subscription's secret needs a valid token (`subscribe` asserts 201).
    app.subscribe("store-t", &receiver.url(), &["*"]).await;
    let ready: Value = app.http.get(app.url("/ready")).json_answer().await;
    assert_eq!(
        ready["secrets"], true,
        "the token is still valid after its first TTL"
    );
}
