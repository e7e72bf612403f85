//! Configs and their credentials: write-only credentials, deactivation, Vault as the credential store, and bad
//! setup refused with stable problem codes.

use super::*;

/// Catches: a credential echoed by any endpoint, or stored in the database in clear.
#[tokio::test]
async fn credentials_are_write_only() {
    let (app, _fake) = app_with_fake().await;
    let response = app
        .as_store(Method::POST, "/connectors", STORE)
        .json(&amazon_body(0))
        .send()
        .await
        .expect("req");
    // The whole document as answered: the test looks for credentials anywhere in it.
    let created: Value = expect_json(response, 201).await;
    let id = serde_json::from_value::<Connector>(created.clone())
        .expect("a connector")
        .config_id
        .to_string();
    let replaced = app
        .as_store(Method::PUT, &format!("/connectors/{id}/credentials"), STORE)
        .json(&json!({"apiKey": AMAZON_CLIENT_ID, "apiSecret": AMAZON_CLIENT_SECRET, "refreshToken": AMAZON_REFRESH_TOKEN}))
        .send()
        .await
        .expect("req");
    assert_eq!(replaced.status(), 204);
    assert!(replaced.text().await.unwrap_or_default().is_empty());
    let incomplete = app
        .as_store(Method::PUT, &format!("/connectors/{id}/credentials"), STORE)
        .json(&json!({"apiKey": "x"}))
        .send()
        .await
        .expect("req");
    assert_eq!(incomplete.status(), 422);
    let mut bodies = vec![created.to_string()];
    for path in [
        format!("/connectors/{id}"),
        "/connectors".into(),
        format!("/connectors/{id}/sync-log"),
        format!("/connectors/{id}/jobs"),
        "/connector-types".into(),
    ] {
        bodies.push(get(&app, &path).await.to_string());
    }
    let tested = app
        .as_store(Method::POST, &format!("/connectors/{id}/test"), STORE)
        .send()
        .await
        .expect("req");
    let tested: Value = tested.json().await.expect("json");
    assert_eq!(tested["ok"], true, "{tested}");
    bodies.push(tested.to_string());
    bodies.push(
        app.http
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("req")
            .text()
            .await
            .expect("text"),
    );
    for body in &bodies {
        for secret in [AMAZON_CLIENT_SECRET, AMAZON_REFRESH_TOKEN, AMAZON_CLIENT_ID] {
            assert!(!body.contains(secret), "a credential leaked: {body}");
        }
    }
    let shown = get(&app, &format!("/connectors/{id}")).await;
    assert_eq!(
        shown["credentials"]["set"],
        json!(["apiKey", "apiSecret", "refreshToken"])
    );
    assert_eq!(shown["credentials"]["complete"], true);
    let stored: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT path, ciphertext FROM encrypted_secrets WHERE path LIKE 'connector/%' ORDER BY path")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(
        stored.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        ["api-key", "api-secret", "refresh-token"].map(|f| format!("connector/{id}/{f}"))
    );
    for (_, ciphertext) in stored {
        assert!(
            !String::from_utf8_lossy(&ciphertext).contains("Atzr|"),
            "stored in clear"
        );
    }
    // Activation without credentials is refused.
    let mut bare = amazon_body(0);
    bare.as_object_mut().expect("object").remove("credentials");
    bare["isActive"] = json!(true);
    let refused = app
        .as_store(Method::POST, "/connectors", STORE)
        .json(&bare)
        .send()
        .await
        .expect("req");
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "connector_credentials_missing");
}

/// Catches: events fanned out to an inactive config, or its waiting retries continuing.
#[tokio::test]
async fn a_deactivated_config_receives_nothing_and_its_retries_stop() {
    let (app, fake) = app_with_fake().await;
    let id = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 503, None);
    let worker = app.worker("w").await;
    app.post_event(&event("product.updated", STORE, product("A")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(jobs(&app, &id, "").await[0].status, "FAILED");

    let off = app
        .as_store(Method::POST, &format!("/connectors/{id}/deactivate"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(off.status(), 200);
    fake.clear_calls();
    let accepted = app
        .api()
        .ingest(&event("product.updated", STORE, product("B")))
        .await;
    assert!(accepted.connector_job_ids.is_empty(), "{accepted:?}");
    app.clock.set(t0() + Minutes::hours(3));
    worker.run_pending_jobs().await.expect("run");
    assert!(
        fake.calls().is_empty(),
        "nothing reached the channel: {:?}",
        fake.calls()
    );
    let listed = jobs(&app, &id, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "CANCELLED");
    // Other stores' events never reach it either.
    let other = app
        .api()
        .ingest(&event("product.updated", "store-other", product("C")))
        .await;
    assert!(other.connector_job_ids.is_empty(), "{other:?}");
}

/// Catches: connector credentials written anywhere but Vault's documented paths, or read from elsewhere.
#[tokio::test]
async fn with_vault_connector_credentials_live_in_vault_and_the_adapter_uses_them() {
    use crate::common::vault::{read_raw, shared, use_vault};
    let (addr, token) = shared();
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    use_vault(&mut config, &addr, &token, &prefix);
    let fake = FakeChannels::start().await;
    fake.configure(&mut config);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let id = create_id(&app, &amazon_body(0)).await;
    for (field, value) in [
        ("api-key", AMAZON_CLIENT_ID),
        ("api-secret", AMAZON_CLIENT_SECRET),
        ("refresh-token", AMAZON_REFRESH_TOKEN),
    ] {
        assert_eq!(
            read_raw(&addr, &token, &format!("{prefix}/connector/{id}/{field}")).await,
            value,
            "{field}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM encrypted_secrets").await,
        0,
        "nothing in the embedded store"
    );
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "A", "quantity": 1}),
    ))
    .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    assert_eq!(
        fake.token_calls().len(),
        1,
        "the LWA exchange used the credentials read from Vault"
    );
    assert_eq!(fake.api_calls().len(), 1);
}

/// Catches: bad setup accepted, or refused without a stable problem code.
#[tokio::test]
async fn bad_connector_requests_get_problem_json_with_stable_codes() {
    let (app, fake) = app_with_fake().await;
    let post = |body: Value| {
        app.as_store(Method::POST, "/connectors", STORE)
            .json(&body)
            .send()
    };
    let code = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let p: Value = r.json().await.expect("problem json");
        (status, p["code"].as_str().unwrap_or_default().to_owned())
    };
    let mut unknown = ebay_body();
    unknown["connectorType"] = json!("shopify");
    assert_eq!(
        code(post(unknown).await.expect("req")).await,
        (422, "unknown_connector_type".into())
    );
    let mut unsupported = ebay_body();
    unsupported["eventSubscriptions"] = json!(["order.fulfilled"]);
    assert_eq!(
        code(post(unsupported).await.expect("req")).await,
        (422, "unsupported_event".into())
    );
    let mut no_seller = amazon_body(0);
    no_seller["settings"]
        .as_object_mut()
        .expect("object")
        .remove("sellerId");
    assert_eq!(
        code(post(no_seller).await.expect("req")).await,
        (422, "invalid_settings".into())
    );
    let mut polling_google = google_body();
    polling_google["pollIntervalSecs"] = json!(60);
    assert_eq!(
        code(post(polling_google).await.expect("req")).await,
        (422, "connector_does_not_poll".into())
    );
    let mut half = amazon_body(0);
    half["credentials"] = json!({"apiKey": "only"});
    assert_eq!(
        code(post(half).await.expect("req")).await,
        (422, "credentials_incomplete".into())
    );

    let google = create_id(&app, &google_body()).await;
    let poll = app
        .as_store(Method::POST, &format!("/connectors/{google}/poll"), STORE)
        .send()
        .await
        .expect("req");
    assert_eq!(code(poll).await, (409, "poll_not_possible".into()));
    let missing = app
        .as_store(
            Method::GET,
            &format!("/connectors/{}", uuid::Uuid::new_v4()),
            STORE,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(code(missing).await, (404, "connector_not_found".into()));
    let other_store = app
        .as_store(Method::GET, &format!("/connectors/{google}"), "store-other")
        .send()
        .await
        .expect("req");
    assert_eq!(
        other_store.status(),
        404,
        "a config is only visible to its store"
    );
    fake.register_gcp();
    app.post_event(&event("product.updated", STORE, product("G-1")))
        .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let job = jobs(&app, &google, "").await[0].job_id;
    let retrigger = app
        .as_store(
            Method::POST,
            &format!("/connectors/{google}/jobs/{job}/retrigger"),
            STORE,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(code(retrigger).await, (409, "job_not_retriggerable".into()));

    // A store's own API key, even with every scope, cannot manage connectors.
    let created = app
        .api()
        .create_key(STORE, "app", &["catalog:read", "webhooks:manage"])
        .await;
    let key = created.key();
    let denied = app
        .http
        .get(app.url("/connectors"))
        .bearer_auth(key)
        .send()
        .await
        .expect("req");
    assert_eq!(code(denied).await, (403, "operator_only".into()));
}
