//! The HTTP edge: typed request strings (NUL, non-string names), the database safety net, who is refused with
//! which status, 405 with `Allow`, and the smaller contract points (token lifetime, webhook timestamp, another
//! store's subscription). Body limits and slow clients are in `edge_limits`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use jobs::Clock;

use serde::de::DeserializeOwned;

use crate::common::client::{Connector, CreatedSubscription, IssuedCredential, expect_json};
use crate::common::{Receiver, TestApp, event, problem};

const STORE: &str = "store-e";

/// Create a resource as the operator and return what was created.
async fn created<T: DeserializeOwned>(app: &TestApp, path: &str, body: Value) -> T {
    let response = app
        .as_store(Method::POST, path, STORE)
        .json(&body)
        .send()
        .await
        .expect("req");
    expect_json(response, 201).await
}

fn subscription(name: Value) -> Value {
    json!({"name": name, "targetUrl": "http://127.0.0.1:9/hook", "events": ["*"]})
}

fn credential(name: Value) -> Value {
    json!({"name": name, "type": "API_KEY", "scopes": ["webhooks:manage"]})
}

fn connector(name: Value, settings: Value) -> Value {
    json!({"connectorType": "ebay", "displayName": name, "settings": settings})
}

/// An API key of `STORE` with `scopes`.
async fn store_key(app: &TestApp, scopes: &[&str]) -> String {
    let body = json!({"name": format!("key {}", uuid::Uuid::new_v4()), "type": "API_KEY", "scopes": scopes});
    let issued: IssuedCredential = created(app, "/credentials", body).await;
    issued.key().to_owned()
}

/// Catches: a NUL character reaching Postgres (500 "unsupported Unicode escape sequence") from any field or
/// filter of the nine endpoints that took one, or being refused without a stable code.
#[tokio::test]
async fn nul_characters_are_refused_at_the_edge_with_a_stable_code() {
    let app = TestApp::spawn().await;
    let sub: CreatedSubscription = created(&app, "/subscriptions", subscription(json!("ok"))).await;
    let sub = sub.subscription.subscription_id.to_string();
    let cred: IssuedCredential = created(&app, "/credentials", credential(json!("ok"))).await;
    let cred = cred.credential.credential_id.to_string();
    let conn: Connector = created(&app, "/connectors", connector(json!("ok"), json!({}))).await;
    let conn = conn.config_id.to_string();
    let nul = json!("a\u{0}b");
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/subscriptions".into(),
            Some(subscription(nul.clone())),
            "invalid_name",
        ),
        (
            Method::PATCH,
            format!("/subscriptions/{sub}"),
            Some(json!({"name": nul})),
            "invalid_name",
        ),
        (
            Method::POST,
            "/credentials".into(),
            Some(credential(nul.clone())),
            "invalid_name",
        ),
        (
            Method::PATCH,
            format!("/credentials/{cred}"),
            Some(json!({"name": nul})),
            "invalid_name",
        ),
        (
            Method::POST,
            "/connectors".into(),
            Some(connector(nul.clone(), json!({}))),
            "invalid_name",
        ),
        (
            Method::PATCH,
            format!("/connectors/{conn}"),
            Some(json!({"displayName": nul})),
            "invalid_name",
        ),
        (
            Method::POST,
            "/connectors".into(),
            Some(connector(json!("c"), json!({"note": nul}))),
            "invalid_settings",
        ),
        (
            Method::POST,
            "/connectors".into(),
            Some(connector(json!("c"), json!({"a\u{0}": 1}))),
            "invalid_settings",
        ),
        (
            Method::PATCH,
            format!("/connectors/{conn}"),
            Some(json!({"settings": {"deep": {"list": [1, nul]}}})),
            "invalid_settings",
        ),
        (
            Method::GET,
            "/deliveries?eventType=order%00placed".into(),
            None,
            "invalid_filter",
        ),
        (
            Method::GET,
            format!("/subscriptions/{sub}/deliveries?eventType=%00"),
            None,
            "invalid_filter",
        ),
        // Both spellings: the parameter's name is being aligned with the docs elsewhere.
        (
            Method::GET,
            format!("/connectors/{conn}/sync-log?entity_type=a%00&entityType=a%00"),
            None,
            "invalid_filter",
        ),
    ];
    for (method, path, body, code) in cases {
        let mut request = app.as_store(method.clone(), &path, STORE);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, p) = problem(request.send().await.expect("req")).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (422, Some(code)),
            "{method} {path} {body:?}"
        );
    }
}

/// Catches: `{"name": 123}` stored as the string "123" (poem-openapi's `String` accepts numbers and booleans).
#[tokio::test]
async fn a_name_must_be_a_json_string_on_every_resource() {
    let app = TestApp::spawn().await;
    for name in [json!(123), json!(true), json!(["n"]), json!({"n": 1})] {
        for (path, body) in [
            ("/subscriptions", subscription(name.clone())),
            ("/credentials", credential(name.clone())),
            ("/connectors", connector(name.clone(), json!({}))),
        ] {
            let (status, p) = app.post_refused(path, STORE, &body).await;
            assert_eq!(
                (status, p["code"].as_str()),
                (422, Some("invalid_name")),
                "{path} {name}"
            );
        }
    }
}

/// Catches: a Postgres data error (SQLSTATE class 22) that slips past the typed fields becoming a 500.
#[tokio::test]
async fn a_database_data_error_is_the_clients_error_not_a_500() {
    use integration_service::api::problem::ApiError;
    let app = TestApp::spawn().await;
    let err = sqlx::query("SELECT $1::text")
        .bind("a\u{0}b")
        .execute(&app.pool)
        .await
        .expect_err("Postgres refuses NUL in text");
    let sqlstate = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert!(
        sqlstate.as_deref().is_some_and(|c| c.starts_with("22")),
        "{sqlstate:?}"
    );
    let api = ApiError::from(err);
    assert_eq!(
        api.status_and_code(),
        (
            poem::http::StatusCode::UNPROCESSABLE_ENTITY,
            integration_service::api::code::ProblemCode::DataException
        )
    );
    let wrapped = sqlx::query("SELECT 'x'::int")
        .execute(&app.pool)
        .await
        .expect_err("22P02");
    let api = ApiError::from(anyhow::Error::new(wrapped).context("in a component"));
    assert_eq!(
        api.status_and_code().1.as_str(),
        "data_exception",
        "found through the anyhow chain"
    );
}

/// Catches: `POST /events` and `GET /quarantine` answering a store key with 401 where every other operator-only
/// route says 403 `operator_only`.
#[tokio::test]
async fn a_store_key_gets_403_operator_only_on_every_operator_route() {
    let app = TestApp::spawn().await;
    let key = store_key(&app, &["webhooks:manage", "orders:read"]).await;
    let routes = [
        (
            Method::POST,
            "/events",
            Some(event("order.placed", STORE, json!({}))),
        ),
        (Method::GET, "/quarantine", None),
        (Method::POST, "/credentials", Some(credential(json!("x")))),
        (Method::GET, "/connectors", None),
    ];
    for (method, path, body) in routes {
        let mut request = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&key);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, p) = problem(request.send().await.expect("req")).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some("operator_only")),
            "{method} {path}"
        );
        let anonymous = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth("ss3_live_nope");
        let (status, _) = problem(anonymous.send().await.expect("req")).await;
        assert_eq!(status, 401, "{method} {path} with an unknown token");
    }
}

/// Catches: a caller without the scope learning how to shape a valid body (422/400) before being told 403.
#[tokio::test]
async fn a_missing_scope_is_refused_before_the_body_is_validated() {
    let app = TestApp::spawn().await;
    let reader = store_key(&app, &["orders:read"]).await;
    let manager = store_key(&app, &["webhooks:manage"]).await;
    let cases = [
        (
            &reader,
            "/subscriptions",
            json!({"name": 5}),
            "missing_scope",
        ),
        (
            &reader,
            "/subscriptions",
            json!("not an object"),
            "missing_scope",
        ),
        (
            &manager,
            "/credentials",
            json!({"name": ""}),
            "operator_only",
        ),
        (&manager, "/connectors", json!({}), "operator_only"),
    ];
    for (key, path, body, code) in cases {
        let request = app.http.post(app.url(path)).bearer_auth(key).json(&body);
        let (status, p) = problem(request.send().await.expect("req")).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some(code)),
            "{path} {body}"
        );
    }
}

fn allowed(response: &reqwest::Response) -> BTreeSet<String> {
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    allow
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Catches: `TRACE` (or any method a path does not serve) answering 405 without the `Allow` header RFC 9110 requires.
#[tokio::test]
async fn an_unsupported_method_gets_405_with_allow() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    let odd = Method::from_bytes(b"FROBNICATE").expect("method");
    let cases = [
        (
            Method::TRACE,
            "/subscriptions".to_owned(),
            vec!["GET", "HEAD", "POST"],
        ),
        (
            Method::TRACE,
            format!("/subscriptions/{id}"),
            vec!["DELETE", "GET", "HEAD", "PATCH"],
        ),
        (odd, "/health".to_owned(), vec!["GET", "HEAD"]),
        (Method::PUT, "/openapi.json".to_owned(), vec!["GET", "HEAD"]),
    ];
    for (method, path, methods) in cases {
        let response = app
            .as_store(method.clone(), &path, STORE)
            .send()
            .await
            .expect("req");
        let allow = allowed(&response);
        let expected: BTreeSet<String> = methods.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(allow, expected, "{method} {path}");
        let (status, p) = problem(response).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (405, Some("method_not_allowed"))
        );
    }
}

/// Catches: `expires_in` measured against the clock after the token was stored (3599 for a one-hour token).
#[tokio::test]
async fn an_access_token_expires_in_exactly_its_configured_lifetime() {
    let app = TestApp::spawn().await;
    let client: IssuedCredential = created(
        &app,
        "/credentials",
        json!({"name": "c", "type": "OAUTH_CLIENT", "scopes": ["orders:read"]}),
    )
    .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id.as_deref().expect("id")),
        (
            "client_secret",
            client.client_secret.as_deref().expect("secret"),
        ),
    ];
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.expect("json");
    let lifetime = app.app.config().credentials.access_token_ttl_secs;
    assert_eq!(token["expires_in"].as_u64(), Some(lifetime));
}

/// Catches: the service clock (fast-forwarded by `worker.time_scale`, or a test's manual clock) leaking into
/// `webhook-timestamp`, which receivers check against their own clock within 5 minutes.
#[tokio::test]
async fn webhook_timestamp_is_the_wall_clock_whatever_the_service_clock_says() {
    let app = TestApp::spawn().await;
    let service_now = app.clock.now();
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe(STORE, &receiver.url(), &["order.placed"])
        .await;
    app.first_delivery(&event("order.placed", STORE, json!({})))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let got = receiver.next(Duration::from_secs(10)).await;
    let sent: i64 = got
        .header("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    let wall = chrono::Utc::now().timestamp();
    assert!(
        (wall - sent).abs() <= 60,
        "sent {sent}, wall clock {wall}, service clock {}",
        service_now.timestamp()
    );
}

/// Catches: another store's subscription id answering `200 []` (its log and its bulk re-trigger) instead of 404.
#[tokio::test]
async fn another_stores_subscription_is_not_found_on_its_log_and_bulk_retrigger() {
    let app = TestApp::spawn().await;
    let theirs: CreatedSubscription =
        created(&app, "/subscriptions", subscription(json!("b"))).await;
    let theirs = theirs.subscription.subscription_id.to_string();
    let as_other = |method: Method, path: String| app.as_store(method, &path, "store-other");
    let log = as_other(Method::GET, format!("/subscriptions/{theirs}/deliveries"));
    let retrigger = as_other(
        Method::POST,
        format!("/subscriptions/{theirs}/dead-letters/retrigger"),
    )
    .json(&json!({"since": "2026-01-01T00:00:00Z"}));
    for request in [log, retrigger] {
        let (status, p) = problem(request.send().await.expect("req")).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (404, Some("subscription_not_found"))
        );
    }
    // Its own store still reads the log, also once the subscription is deleted (deliveries stay in the log).
    let delete = app.as_store(Method::DELETE, &format!("/subscriptions/{theirs}"), STORE);
    assert_eq!(delete.send().await.expect("req").status(), 204);
    let own = app.as_store(
        Method::GET,
        &format!("/subscriptions/{theirs}/deliveries"),
        STORE,
    );
    assert_eq!(own.send().await.expect("req").status(), 200);
}
