//! The OpenAPI document tells the truth (issue 9): problem statuses, nullability, declared headers, parameter names,
//! and the committed copy in `docs/openapi.json`. Schemathesis (`scripts/schemathesis.sh`) checks the document
//! against the running service; these tests pin the parts a reader relies on.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::common::client::JsonAnswer;

/// The document as `integration-service openapi` prints it (no database needed).
fn printed_document() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_integration-service"))
        .arg("openapi")
        .output()
        .expect("run integration-service openapi");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn document() -> Value {
    serde_json::from_str(&printed_document()).expect("the document is JSON")
}

/// Every (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

fn documents_problem(op: &Value, status: &str) -> bool {
    op["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"]
        == "#/components/schemas/Problem"
}

fn store_scoped(op: &Value) -> bool {
    op["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|alt| alt.get("StoreAuth").is_some()))
}

fn any_caller(op: &Value) -> bool {
    op["security"]
        .as_array()
        .is_some_and(|s| s.iter().all(|alt| alt.get("CallerAuth").is_some()))
}

/// Catches: `docs/openapi.json` (what API consumers read and diff in review) drifting from the code.
///
/// Compared as JSON, not byte for byte: test builds print keys in another order (a dev-dependency, thirtyfour,
/// turns on serde_json's `preserve_order`). `scripts/check-openapi.sh`, which builds without dev-dependencies,
/// compares the bytes.
#[test]
fn committed_openapi_document_matches_what_the_binary_prints() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json exists");
    let committed: Value = serde_json::from_str(&committed).expect("docs/openapi.json is JSON");
    assert!(
        committed == document(),
        "docs/openapi.json is stale: run `integration-service openapi > docs/openapi.json`"
    );
}

/// Catches: error statuses a route answers missing from the document, or documented without the problem schema
/// (clients generated from the document then fail to parse our errors).
#[test]
fn every_route_documents_the_problem_statuses_it_can_answer() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let mut expected: Vec<&str> = Vec::new();
        if op.get("security").is_some() {
            expected.push("401");
        }
        // Any caller's credential opens `CallerAuth` routes (no scope or operator status needed): nothing to forbid.
        if op.get("security").is_some() && !any_caller(&op) {
            expected.push("403");
        }
        if store_scoped(&op) {
            expected.extend(["400", "422", "503"]);
        }
        if path.contains('{') && store_scoped(&op) {
            expected.push("404");
        }
        if op.get("requestBody").is_some() {
            expected.extend(["411", "413"]);
            if path != "/oauth/token" {
                expected.extend(["400", "415"]);
            }
        }
        for status in expected {
            assert!(
                documents_problem(&op, status),
                "{method} {path} does not document {status} with the problem schema"
            );
        }
    }
}

/// Catches: operators' `X-SS3-Store-Id` header missing from the document, so generated clients cannot send it.
#[test]
fn store_scoped_routes_declare_the_store_header() {
    let doc = document();
    for (path, method, op) in operations(&doc)
        .into_iter()
        .filter(|(.., op)| store_scoped(op))
    {
        let declared = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["name"] == "X-SS3-Store-Id"
                    && p["in"] == "header"
                    && p["schema"]["pattern"].is_string()
            })
        });
        assert!(declared, "{method} {path} does not declare X-SS3-Store-Id");
    }
}

/// Catches: `null` in responses where the schema says the field is a plain string (schema validators reject it),
/// and the sync-log filter spelled `entity_type` while docs/connectors.md says `entityType`.
#[test]
fn optional_fields_are_nullable_and_parameters_use_the_documented_names() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("SubscriptionPage", "nextCursor"),
        ("Delivery", "nextRetryAt"),
        ("Credential", "expiresAt"),
        ("Connector", "pollIntervalSecs"),
        ("Readiness", "kafka"),
        ("CreateConnector", "credentials"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["nullable"], true,
            "{schema}.{field} is not nullable"
        );
    }
    let sync_log = &doc["paths"]["/connectors/{id}/sync-log"]["get"]["parameters"];
    let names: Vec<&str> = sync_log
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"entityType"), "{names:?}");
    assert_eq!(
        schemas["Delivery"]["properties"]["status"]["enum"],
        serde_json::json!([
            "PENDING",
            "FAILED",
            "DELIVERED",
            "DEAD_LETTERED",
            "CANCELLED"
        ])
    );
    assert_eq!(
        schemas["CreateConnector"]["properties"]["connectorType"]["enum"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

/// Catches: target URLs the document's `targetUrl` pattern refuses being stored anyway (schemathesis sends such
/// values and expects a refusal), while every documented form, IPv6 literals with an IPv4 tail included, is taken.
#[tokio::test]
async fn target_urls_outside_the_documented_grammar_are_refused() {
    let app = TestApp::spawn().await;
    let create = |target: &'static str| {
        app.as_store(Method::POST, "/subscriptions", "store-a")
            .json(&json!({"name": "n", "targetUrl": target, "events": ["*"]}))
            .send()
    };
    for refused in [
        "http://exa_mple.com/hook",
        "http://1.2.3.999/",
        "http://example.com/hook#fragment",
        "http://example.com/a b",
        " http://example.com/",
    ] {
        let response = create(refused).await.expect("req");
        assert_eq!(response.status(), 422, "{refused} accepted");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["code"], "invalid_target_url", "{refused}");
    }
    for accepted in [
        "https://example.com/hooks/orders?tenant=a&v=2",
        "http://127.0.0.1:8080/hook",
        "http://[::ffff:10.0.0.1]:9000/",
        "HTTP://Example.COM",
    ] {
        let response = create(accepted).await.expect("req");
        assert_eq!(response.status(), 201, "{accepted} refused");
    }
}

/// Catches: a malformed `X-SS3-Store-Id` silently ignored when a store credential sends it (the document declares
/// the header with a pattern, so a value outside it must be refused whoever sends it).
#[tokio::test]
async fn a_malformed_store_header_is_refused_even_from_a_store_credential() {
    let app = TestApp::spawn().await;
    let created: Value = app
        .as_store(Method::POST, "/credentials", "store-a")
        .json(&json!({"name": "k", "type": "API_KEY", "scopes": ["webhooks:manage"]}))
        .json_answer()
        .await;
    let key = created["apiKey"].as_str().expect("key");
    let list = |store: &'static str| {
        app.http
            .get(app.url("/subscriptions"))
            .bearer_auth(key)
            .header("x-ss3-store-id", store)
            .send()
    };
    let refused = list("not a store!").await.expect("req");
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "invalid_store_id");
    // A well-formed header is ignored: a credential's store is its own.
    assert_eq!(list("store-b").await.expect("req").status(), 200);
}

/// Catches: a token request that does not parse answered with a problem document, where OAuth clients read the
/// RFC 6749 §5.2 error format on every 400 of the token endpoint (and the document says so).
#[tokio::test]
async fn an_unparsable_token_request_gets_an_rfc_6749_invalid_request() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("req");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["error_description"].is_string());
}
