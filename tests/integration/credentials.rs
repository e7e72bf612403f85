//! API keys, OAuth client credentials, the gateway's validate endpoint, and this API using them.

use std::sync::Arc;
use std::time::Duration;

use integration_service::startup::Roles;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::client::{CreatedSubscription, IssuedCredential, JsonAnswer, expect_json};
use crate::common::{Receiver, TestApp, TestDb, test_config};

/// How long a second process may take to start listening for credential changes.
const WAIT_LISTENING: Duration = Duration::from_secs(10);

async fn issue(
    app: &TestApp,
    store: &str,
    kind: &str,
    name: &str,
    scopes: &[&str],
) -> IssuedCredential {
    app.api().create_credential(store, kind, name, scopes).await
}

/// The whole validation document (not `Api::validate`): tests compare it exactly, so no field is added unseen.
async fn validate(app: &TestApp, token: &str) -> Value {
    let response = app
        .http
        .get(app.url("/credentials/validate"))
        .bearer_auth(token)
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn eventually_invalid(app: &TestApp, token: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if validate(app, token).await["valid"] == false {
            return true;
        }
        crate::common::wait::pause().await;
    }
    false
}

/// Catches: a secret leaking after creation, or stored in clear.
#[tokio::test]
async fn the_secret_is_shown_only_at_creation_and_stored_as_a_bcrypt_hash() {
    let app = TestApp::spawn().await;
    let created = issue(
        &app,
        "store-a",
        "API_KEY",
        "Inventory Sync App",
        &["inventory:read", "inventory:write"],
    )
    .await;
    let key = created.key().to_owned();
    assert!(key.starts_with("ss3_live_") && key.len() <= 72);
    let id = created.credential.credential_id.to_string();
    let secret_part = key.rsplit('_').next().expect("secret").to_owned();

    let listed = app
        .as_store(Method::GET, "/credentials", "store-a")
        .send()
        .await
        .expect("req")
        .text()
        .await
        .expect("text");
    let got = app
        .as_store(Method::GET, &format!("/credentials/{id}"), "store-a")
        .send()
        .await
        .expect("req")
        .text()
        .await
        .expect("text");
    for body in [&listed, &got] {
        assert!(
            !body.contains(&secret_part)
                && !body.contains("hashedSecret")
                && !body.contains("$2b$"),
            "{body}"
        );
    }
    let hash: String = sqlx::query_scalar("SELECT hashed_secret FROM api_credentials")
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert!(hash.starts_with("$2b$") && !hash.contains(&secret_part));
    assert!(bcrypt::verify(&secret_part, &hash).expect("bcrypt"));

    let dup = app
        .as_store(Method::POST, "/credentials", "store-a")
        .json(&json!({"name": "Inventory Sync App", "type": "API_KEY", "scopes": ["orders:read"]}))
        .send()
        .await
        .expect("req");
    assert_eq!(dup.status(), 409);
    let bad = app
        .as_store(Method::POST, "/credentials", "store-a")
        .json(&json!({"name": "x", "type": "API_KEY", "scopes": ["orders:write"]}))
        .send()
        .await
        .expect("req");
    let problem: Value = bad.json().await.expect("json");
    assert_eq!(problem["code"], "invalid_scope");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("webhooks:manage"),
        "lists the valid scopes"
    );
    let past = app.as_store(Method::POST, "/credentials", "store-a").json(&json!({"name": "y", "type": "API_KEY", "scopes": ["orders:read"], "expiresAt": "2020-01-01T00:00:00Z"})).send().await.expect("req");
    assert_eq!(past.status(), 422);
    let scopes: Value = app.http.get(app.url("/scopes")).json_answer().await;
    assert_eq!(scopes.as_array().map(Vec::len), Some(6));
}

/// Catches: validation accepting bad, inactive or expired keys, or last_used_at never written.
#[tokio::test]
async fn validate_answers_for_valid_keys_only_and_records_last_use() {
    let app = TestApp::spawn().await;
    let created = issue(
        &app,
        "store-a",
        "API_KEY",
        "BI Connector",
        &["orders:read", "catalog:read"],
    )
    .await;
    let key = created.key().to_owned();
    let id = created.credential.credential_id.to_string();

    let ok = validate(&app, &key).await;
    assert_eq!(
        ok,
        json!({"valid": true, "storeId": "store-a", "scopes": ["catalog:read", "orders:read"], "credentialId": id})
    );
    let via_header: Value = app
        .http
        .get(app.url("/credentials/validate"))
        .header("x-api-key", &key)
        .json_answer()
        .await;
    assert_eq!(via_header["valid"], true);

    let (head, secret) = key.rsplit_once('_').expect("parts");
    let wrong_secret = format!("{head}_{}", secret.chars().rev().collect::<String>());
    let unknown_prefix = format!("ss3_live_{}_{secret}", "Z".repeat(12));
    for invalid in [
        wrong_secret.as_str(),
        unknown_prefix.as_str(),
        "garbage",
        "ss3_live_x_y",
        "",
    ] {
        assert_eq!(
            validate(&app, invalid).await,
            json!({"valid": false}),
            "{invalid}"
        );
    }
    let none: Value = app
        .http
        .get(app.url("/credentials/validate"))
        .json_answer()
        .await;
    assert_eq!(none, json!({"valid": false}));

    // last_used_at is written by the coalescing flusher.
    let mut last_used: Option<chrono::DateTime<chrono::Utc>> = None;
    for _ in 0..100 {
        last_used = sqlx::query_scalar("SELECT last_used_at FROM api_credentials")
            .fetch_one(&app.pool)
            .await
            .expect("row");
        if last_used.is_some() {
            break;
        }
        crate::common::wait::pause().await;
    }
    assert!(last_used.is_some(), "last_used_at was recorded");

    // Deactivation is honoured at once, although the key is cached.
    let off = app
        .as_store(
            Method::POST,
            &format!("/credentials/{id}/deactivate"),
            "store-a",
        )
        .send()
        .await
        .expect("req");
    assert_eq!(off.status(), 200);
    assert_eq!(validate(&app, &key).await, json!({"valid": false}));
    app.as_store(
        Method::POST,
        &format!("/credentials/{id}/reactivate"),
        "store-a",
    )
    .send()
    .await
    .expect("req");
    assert_eq!(validate(&app, &key).await["valid"], true);

    // Expired (made so in the database for a key this process never validated).
    let other = issue(&app, "store-a", "API_KEY", "Expiring", &["orders:read"]).await;
    sqlx::query("UPDATE api_credentials SET expires_at = now() - interval '1 second' WHERE name = 'Expiring'").execute(&app.pool).await.expect("update");
    assert_eq!(validate(&app, other.key()).await, json!({"valid": false}));

    // Rotation: the old key stops at once; a grace period keeps both working.
    let rotated: IssuedCredential = app
        .as_store(
            Method::POST,
            &format!("/credentials/{id}/rotate"),
            "store-a",
        )
        .json(&json!({}))
        .json_answer()
        .await;
    let new_key = rotated.key().to_owned();
    assert_eq!(validate(&app, &key).await["valid"], false);
    assert_eq!(validate(&app, &new_key).await["valid"], true);
    let graced: IssuedCredential = app
        .as_store(
            Method::POST,
            &format!("/credentials/{id}/rotate"),
            "store-a",
        )
        .json(&json!({"graceSeconds": 600}))
        .json_answer()
        .await;
    assert_eq!(
        validate(&app, &new_key).await["valid"],
        true,
        "old key works during the grace period"
    );
    assert_eq!(validate(&app, graced.key()).await["valid"], true);

    let stats = app.app.state().validator.cache_stats();
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
}

/// Catches: a second process trusting its cache after a credential was deactivated elsewhere.
/// The cache TTL is 60 s here, so turning invalid within seconds shows the NOTIFY path works.
#[tokio::test]
async fn deactivation_reaches_another_process_cache_well_within_the_ttl() {
    let db = Arc::new(TestDb::create().await);
    let mut config = test_config(&db);
    config.credentials.cache_ttl_secs = 60;
    let api = Roles::API;
    let clock = jobs::ManualClock::new(crate::common::t0());
    let a = TestApp::spawn_with_clock(
        db.clone(),
        config.clone(),
        api,
        clock.clone(),
        Arc::new(clock.clone()),
    )
    .await;
    let b =
        TestApp::spawn_with_clock(db.clone(), config, api, clock.clone(), Arc::new(clock)).await;
    let created = issue(&a, "store-a", "API_KEY", "Shared", &["orders:read"]).await;
    let key = created.key().to_owned();
    let id = created.credential.credential_id.to_string();
    // Once B listens for changes (its listener starts with the API, then empties B's cache), fill B's cache.
    tokio::time::timeout(WAIT_LISTENING, b.app.state().validator.listening())
        .await
        .expect("B listens for credential changes");
    assert_eq!(validate(&b, &key).await["valid"], true);
    assert_eq!(validate(&b, &key).await["valid"], true);
    assert!(
        b.app.state().validator.cache_stats().hits >= 1,
        "B answers from its cache"
    );

    a.as_store(
        Method::POST,
        &format!("/credentials/{id}/deactivate"),
        "store-a",
    )
    .send()
    .await
    .expect("req");
    assert!(
        eventually_invalid(&b, &key, Duration::from_secs(5)).await,
        "B saw the deactivation"
    );
}

async fn token(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = app.http.post(app.url("/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("req");
    (
        response.status().as_u16(),
        response.json().await.expect("json"),
    )
}

/// Catches: tokens with more scopes than the client, bad client secrets accepted, tokens outliving their client.
#[tokio::test]
async fn oauth_client_credentials_issue_scoped_tokens_that_die_with_the_client() {
    let app = TestApp::spawn().await;
    let client = issue(
        &app,
        "store-a",
        "OAUTH_CLIENT",
        "BI Connector",
        &["orders:read", "customers:read"],
    )
    .await;
    let (id, secret) = (
        client.client_id.clone().expect("id"),
        client.client_secret.clone().expect("secret"),
    );
    let credential_id = client.credential.credential_id.to_string();

    let (status, body) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["scope"].as_str()),
        (Some("Bearer"), Some("orders:read"))
    );
    assert!(body["expires_in"].as_u64().unwrap_or(0) > 3000);
    let access = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        validate(&app, &access).await,
        json!({"valid": true, "storeId": "store-a", "scopes": ["orders:read"], "credentialId": credential_id})
    );

    let (status, body) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("customers:read orders:read")),
        "form auth, all scopes"
    );

    let (status, body) = token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read inventory:write"),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&id, "wrong-secret")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = token(&app, &[("grant_type", "password")], Some((&id, &secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = token(&app, &[("scope", "orders:read")], Some((&id, &secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // An expired token (made so in the database, never validated before).
    let (_, fresh) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    sqlx::query("UPDATE oauth_access_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256($1::text::bytea)")
        .bind(fresh["access_token"].as_str().expect("token"))
        .execute(&app.pool)
        .await
        .expect("update");
    assert_eq!(
        validate(&app, fresh["access_token"].as_str().expect("token")).await,
        json!({"valid": false})
    );

    // Deactivating the client invalidates its (cached) tokens.
    app.as_store(
        Method::POST,
        &format!("/credentials/{credential_id}/deactivate"),
        "store-a",
    )
    .send()
    .await
    .expect("req");
    assert_eq!(validate(&app, &access).await, json!({"valid": false}));
    let (status, _) = token(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 401, "a deactivated client gets no new token");
}

/// Catches: a credential reaching another store's data, or acting without the needed scope.
#[tokio::test]
async fn credentials_are_confined_to_their_store_and_scopes() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    let (sub_b, _) = app.subscribe("store-b", &receiver.url(), &["*"]).await;
    let manager = issue(&app, "store-a", "API_KEY", "Manager", &["webhooks:manage"])
        .await
        .key()
        .to_owned();
    let reader = issue(&app, "store-a", "API_KEY", "Reader", &["orders:read"])
        .await
        .key()
        .to_owned();

    let as_key = |method: Method, path: &str, key: &str| {
        app.http.request(method, app.url(path)).bearer_auth(key)
    };
    let forbidden = as_key(Method::GET, "/subscriptions", &reader)
        .send()
        .await
        .expect("req");
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        forbidden
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = forbidden.json().await.expect("json");
    assert_eq!(problem["code"], "missing_scope");

    let created = as_key(Method::POST, "/subscriptions", &manager)
        .json(&json!({"name": "m", "targetUrl": receiver.url(), "events": ["*"]}))
        .send()
        .await
        .expect("req");
    let created: CreatedSubscription = expect_json(created, 201).await;
    assert_eq!(
        created.subscription.store_id, "store-a",
        "the store comes from the credential"
    );
    // The store header cannot widen a credential's reach.
    let list: Value = as_key(Method::GET, "/subscriptions", &manager)
        .header("x-ss3-store-id", "store-b")
        .json_answer()
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        as_key(Method::GET, &format!("/subscriptions/{sub_b}"), &manager)
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    let mint = as_key(Method::POST, "/credentials", &manager)
        .json(&json!({"name": "x", "type": "API_KEY", "scopes": ["customers:read"]}))
        .send()
        .await
        .expect("req");
    let problem: Value = mint.json().await.expect("json");
    assert_eq!(
        problem["code"], "operator_only",
        "credentials cannot mint credentials"
    );
    assert_eq!(
        as_key(
            Method::GET,
            "/subscriptions",
            "ss3_live_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
        )
        .send()
        .await
        .expect("req")
        .status(),
        401
    );
}
