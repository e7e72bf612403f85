//! The management API: validation as problem JSON, store isolation, target policy, OpenAPI.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::client::{Delivery, JsonAnswer, Page, Subscription};
use crate::common::{ADMIN_TOKEN, Receiver, TestApp, TestDb, event, problem, test_config};
use integration_service::config::Mode;
use integration_service::startup::Roles;

/// Catches: invalid input reaching the database, or errors without a stable code.
#[tokio::test]
async fn invalid_requests_get_problem_json_with_stable_codes() {
    let app = TestApp::spawn().await;
    let create = |body: Value| {
        app.as_store(Method::POST, "/subscriptions", "store-a")
            .json(&body)
            .send()
    };
    let cases = [
        (
            json!({"name": "x", "targetUrl": "ftp://example.com", "events": ["order.placed"]}),
            422,
            "invalid_target_url",
        ),
        (
            json!({"name": "x", "targetUrl": "http://example.com", "events": []}),
            422,
            "invalid_event_type",
        ),
        (
            json!({"name": "x", "targetUrl": "http://example.com", "events": ["Order Placed"]}),
            422,
            "invalid_event_type",
        ),
        (
            json!({"name": "", "targetUrl": "http://example.com", "events": ["*"]}),
            422,
            "invalid_name",
        ),
        (
            json!({"targetUrl": "http://example.com"}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = problem(create(body.clone()).await.expect("req")).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "for {body}"
        );
    }
    let not_json = app
        .http
        .post(app.url("/events"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("not json");
    let (status, p) = problem(not_json.send().await.expect("req")).await;
    assert_eq!((status, p["code"].as_str()), (400, Some("invalid_request")));
    let (status, p) = problem(app.post_event(&json!(["an array"])).await).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("event_not_object"))
    );
    let bad_type =
        json!({"eventId": uuid::Uuid::new_v4(), "eventType": "Order Placed", "storeId": "s"});
    let (status, p) = problem(app.post_event(&bad_type).await).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("event_invalid_field"))
    );
    let missing = json!({"eventType": "order.placed", "storeId": "s"});
    let (status, p) = problem(app.post_event(&missing).await).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("event_missing_field"))
    );
    let (status, p) = problem(
        app.http
            .get(app.url("/subscriptions"))
            .send()
            .await
            .expect("req"),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (401, Some("unauthorized")));
    let (status, p) = problem(
        app.http
            .get(app.url("/subscriptions"))
            .bearer_auth("wrong")
            .header("x-ss3-store-id", "s")
            .send()
            .await
            .expect("req"),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (401, Some("unauthorized")));
    let (status, p) = problem(
        app.as_store(Method::GET, "/deliveries?status=NOPE", "store-a")
            .send()
            .await
            .expect("req"),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (422, Some("invalid_status")));
    let (status, p) = problem(
        app.as_store(Method::GET, "/deliveries?cursor=garbage", "store-a")
            .send()
            .await
            .expect("req"),
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (422, Some("invalid_cursor")));
}

/// Catches: a query missing its store filter.
#[tokio::test]
async fn store_a_cannot_see_or_touch_store_b() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    let (sub_b, _) = app.subscribe("store-b", &receiver.url(), &["*"]).await;
    let delivery_b = app
        .first_delivery(&event("order.placed", "store-b", json!({})))
        .await;

    for (method, path) in [
        (Method::GET, format!("/subscriptions/{sub_b}")),
        (Method::PATCH, format!("/subscriptions/{sub_b}")),
        (Method::DELETE, format!("/subscriptions/{sub_b}")),
        (Method::POST, format!("/subscriptions/{sub_b}/test")),
        (Method::GET, format!("/deliveries/{delivery_b}")),
        (Method::POST, format!("/deliveries/{delivery_b}/resend")),
    ] {
        let request = app.as_store(method.clone(), &path, "store-a");
        let request = if method == Method::PATCH {
            request.json(&json!({"name": "stolen"}))
        } else {
            request
        };
        let (status, _) = problem(request.send().await.expect("req")).await;
        assert_eq!(status, 404, "{method} {path} from store-a");
    }
    let api = app.api();
    let list: Page<Subscription> = api.get("store-a", "/subscriptions").await;
    assert!(list.items.is_empty(), "{list:?}");
    let log: Page<Delivery> = api.get("store-a", "/deliveries").await;
    assert!(log.items.is_empty(), "{log:?}");
    let own: Page<Delivery> = api.get("store-b", "/deliveries").await;
    assert_eq!(own.items.len(), 1);
}

/// Catches: SSRF to internal addresses in production mode.
#[tokio::test]
async fn production_mode_refuses_private_targets_unless_allow_listed() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.mode = Mode::Production;
    config.delivery.allowed_private_hosts = vec!["127.0.0.2".into()];
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    for target in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest",
        "http://localhost/x",
    ] {
        let body = json!({"name": "x", "targetUrl": target, "events": ["*"]});
        let (status, p) = app.post_refused("/subscriptions", "store-a", &body).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (422, Some("target_not_allowed")),
            "{target}"
        );
    }
    let allowed = app
        .as_store(Method::POST, "/subscriptions", "store-a")
        .json(&json!({"name": "x", "targetUrl": "http://127.0.0.2:9/x", "events": ["*"]}))
        .send()
        .await
        .expect("req");
    assert_eq!(allowed.status(), 201);
}

/// Catches: a secret returned after creation, and the cursor pagination skipping or repeating rows.
#[tokio::test]
async fn the_signing_secret_is_shown_once_and_lists_page_by_cursor() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            app.subscribe("store-a", &receiver.url(), &["*"])
                .await
                .0
                .to_string(),
        );
    }
    let pages = all_pages(&app, "/subscriptions?limit=2", "store-a").await;
    assert!(
        pages.iter().all(|p| !p.to_string().contains("whsec_")),
        "no secret in lists"
    );
    let seen: Vec<String> = pages
        .iter()
        .flat_map(|p| Page::<Subscription>::of(p).items)
        .map(|s| s.subscription_id.to_string())
        .collect();
    assert_eq!(seen, ids);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM encrypted_secrets LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert!(
        !String::from_utf8_lossy(&stored).contains("whsec_"),
        "secrets are encrypted at rest"
    );

    for _ in 0..3 {
        app.post_event(&event("order.placed", "store-a", json!({})))
            .await;
    }
    let deliveries: Vec<String> = all_pages(&app, "/deliveries?limit=4", "store-a")
        .await
        .iter()
        .flat_map(|p| Page::<Delivery>::of(p).items)
        .map(|d| d.delivery_id.to_string())
        .collect();
    let unique: std::collections::HashSet<_> = deliveries.iter().collect();
    assert_eq!((deliveries.len(), unique.len()), (15, 15));
}

/// Every page of a list, following `nextCursor`.
async fn all_pages(app: &TestApp, first: &str, store: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let page: Value = app.as_store(Method::GET, &path, store).json_answer().await;
        let next = page["nextCursor"]
            .as_str()
            .map(|c| format!("{first}&cursor={c}"));
        pages.push(page);
        match next {
            Some(p) => path = p,
            None => return pages,
        }
    }
}

/// Catches: the API document not being served.
#[tokio::test]
async fn openapi_document_and_health_are_served() {
    let app = TestApp::spawn().await;
    let spec: Value = app.http.get(app.url("/openapi.json")).json_answer().await;
    assert!(spec["paths"]["/subscriptions"].is_object());
    assert!(spec["paths"]["/deliveries/{id}/retrigger"].is_object());
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    let ready: Value = app.http.get(app.url("/ready")).json_answer().await;
    assert_eq!(ready["ready"], true);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("req")
        .text()
        .await
        .expect("text");
    for series in [
        "ss3_queue_jobs{state=\"due\"}",
        "ss3_attempts_total{attempt=\"1\"}",
        "ss3_delivery_latency_seconds_bucket{le=\"+Inf\"}",
        "ss3_validation_cache_total{outcome=\"hit\"}",
        "ss3_jobs_total{kind=\"webhook\",outcome=\"dead_lettered\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
}
