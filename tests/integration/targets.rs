//! The production-mode target policy over real HTTP: every address form that reaches a special-purpose IPv4 or
//! IPv6 block (IANA registries, IPv4 embedded in IPv6 decoded) is refused at subscription creation and again at
//! delivery.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, event, t0, test_config};
use integration_service::config::Mode;
use integration_service::startup::Roles;

const STORE: &str = "store-t";

/// The four forms of issue 9, item 6, which passed the old check, then the other embeddings and registries.
const REFUSED: &[(&str, &str)] = &[
    ("http://[::127.0.0.1]/x", "IPv4-compatible"),
    ("http://[64:ff9b::7f00:1]/x", "NAT64"),
    ("http://[2002:7f00:1::]/x", "6to4"),
    ("http://192.0.0.1/x", "192.0.0.0/29"),
    ("http://[::ffff:10.0.0.1]/x", "IPv4-mapped"),
    ("http://[2001:0:808:808::80ff:fffe]/x", "Teredo client"),
    ("http://[64:ff9b:1::a00:1]/x", "64:ff9b:1::/48"),
    ("http://100.64.0.1/x", "100.64.0.0/10"),
    ("http://[fec0::1]/x", "fec0::/10"),
];

async fn create(app: &TestApp, target: &str) -> (u16, Value) {
    let response = app
        .as_store(Method::POST, "/subscriptions", STORE)
        .json(&json!({"name": "t", "targetUrl": target, "events": ["*"]}))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Catches: IPv4-compatible, NAT64 and 6to4 forms of 127.0.0.1 and 192.0.0.1 accepted as targets in production
/// mode (SSRF to loopback and to special-purpose addresses).
#[tokio::test]
async fn in_production_mode_every_form_of_a_special_purpose_address_is_refused_at_creation() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.mode = Mode::Production;
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    for (target, named) in REFUSED {
        let (status, problem) = create(&app, target).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("target_not_allowed")),
            "{target}: {problem}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(named), "{target}: {detail}");
    }
    for public in ["http://93.184.216.34/x", "http://[64:ff9b::5db8:d822]/x"] {
        let (status, body) = create(&app, public).await;
        assert_eq!(status, 201, "{public}: {body}");
    }
}

/// Catches: the delivery-time check (IP literals bypass the resolver) letting the same forms through, for
/// subscriptions stored before production mode or before this check.
#[tokio::test]
async fn in_production_mode_every_form_of_a_special_purpose_address_is_refused_at_delivery() {
    let db = Arc::new(TestDb::create().await);
    let mut config = test_config(&db);
    config.delivery.connect_timeout_ms = 500;
    let clock = jobs::ManualClock::new(t0());
    let development = TestApp::spawn_with_clock(
        db.clone(),
        config.clone(),
        Roles::API,
        clock.clone(),
        Arc::new(clock.clone()),
    )
    .await;
    for (target, _) in REFUSED {
        let (status, body) = create(&development, target).await;
        assert_eq!(status, 201, "development mode accepts {target}: {body}");
    }
    config.mode = Mode::Production;
    let production =
        TestApp::spawn_with_clock(db, config, Roles::API, clock.clone(), Arc::new(clock)).await;
    let accepted = production
        .api()
        .ingest(&event("order.placed", STORE, json!({"orderId": "o-1"})))
        .await;
    let ids = accepted.delivery_ids.clone();
    assert_eq!(ids.len(), REFUSED.len(), "{accepted:?}");
    production
        .worker("w")
        .await
        .run_pending_jobs()
        .await
        .expect("run");
    for id in ids {
        let delivery = production.delivery(STORE, &id.to_string()).await;
        let error = delivery.attempts[0].error.as_deref().unwrap_or_default();
        assert!(
            error.contains("not a public address"),
            "{}: {error}",
            delivery.delivery_id
        );
    }
}
