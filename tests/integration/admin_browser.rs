//! The admin panel (`/admin`, issue 12) in a real browser: headless Chromium driven over WebDriver
//! (`common::browser`), against the page contract (selectors and texts) agreed for the panel. Setup goes through
//! the API, as in the other tests; what a person does and reads goes through the pages.
//!
//! Workers are driven by hand on a manual clock a day behind the wall clock, so hours of retries take no time and
//! still lie in the past, inside the windows the panel reads with the wall clock (last 24 h, last 30 days).
//! Each main page is saved as a screenshot (`common::browser::screenshot_dir`) for review.

mod dead_letters;
mod subscriptions;

use std::sync::Arc;

use integration_service::startup::Roles;
use jobs::ManualClock;
use jobs::worker::Worker;
use uuid::Uuid;

use crate::common::browser::{Browser, WAIT};
use crate::common::{ADMIN_TOKEN, TestApp, TestDb, test_config};

/// The store whose key signs in.
const STORE: &str = "store-a";
/// Another store, whose ids the signed-in store must not reach.
const OTHER: &str = "store-b";
/// The session cookie's name.
const SESSION: &str = "ss3_admin";

/// The API role on a fresh database, its clock a day behind the wall clock (see the module doc).
async fn spawn_app() -> TestApp {
    let db = TestDb::create().await;
    let config = test_config(&db);
    let clock = ManualClock::new(chrono::Utc::now() - chrono::Duration::days(1));
    TestApp::spawn_with_clock(
        Arc::new(db),
        config,
        Roles::API,
        clock.clone(),
        Arc::new(clock),
    )
    .await
}

/// An API key of `store` holding `scopes`, issued through the API.
async fn key(app: &TestApp, store: &str, name: &str, scopes: &[&str]) -> String {
    let issued = app.api().create_key(store, name, scopes).await;
    issued.key().to_owned()
}

/// A browser on the app, not signed in.
async fn browser(app: &TestApp) -> Browser {
    Browser::start(format!("http://{}", app.addr)).await
}

/// Sign in on the login page with a store API key and land on the overview.
async fn sign_in(browser: &Browser, api_key: &str) {
    browser.goto("/admin/login").await;
    browser.fill("api_key", api_key).await;
    browser.click("#sign-in").await;
    browser.wait_for_path("/admin", WAIT).await;
}

/// A browser signed in as `STORE` with a key that may manage webhooks.
async fn signed_in(app: &TestApp) -> Browser {
    let api_key = key(app, STORE, "admin panel", &["webhooks:manage"]).await;
    let browser = browser(app).await;
    sign_in(&browser, &api_key).await;
    browser
}

/// A browser signed in as a platform operator acting on `STORE` (credentials are managed by operators only, as
/// in the API).
async fn operator_signed_in(app: &TestApp) -> Browser {
    let browser = browser(app).await;
    browser.goto("/admin/login").await;
    browser.fill("operator_token", ADMIN_TOKEN).await;
    browser.fill("store_id", STORE).await;
    browser.click("#operator-sign-in").await;
    browser.wait_for_path("/admin", WAIT).await;
    browser
}

/// The session cookie's value in `browser`.
async fn session_cookie(browser: &Browser) -> String {
    browser
        .cookie(SESSION)
        .await
        .unwrap_or_else(|| panic!("no {SESSION} cookie after signing in"))
        .value
}

/// `GET path` presenting the session cookie `session`, redirects not followed: what a replayed cookie gets.
async fn get_with_session(app: &TestApp, path: &str, session: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url(path))
        .header("cookie", format!("{SESSION}={session}"))
        .send()
        .await
        .expect("request")
}

/// A worker of the app, to drive by hand.
async fn worker(app: &TestApp) -> Worker {
    app.worker("admin-browser").await
}

/// Whether a credential named `name` is listed on the credentials page the browser shows.
async fn credential_listed(browser: &Browser, name: &str) -> bool {
    let names = browser
        .texts("#credentials tr[data-credential-id] .name")
        .await;
    names.iter().any(|n| n == name)
}

/// Catches: a key that cannot manage webhooks (or no key) reaching the panel; a session cookie readable by
/// scripts or sent cross-site; the overview or the event-types page not rendering the store's data.
#[tokio::test]
async fn a_store_key_that_manages_webhooks_signs_in_and_other_keys_are_refused() {
    let app = spawn_app().await;
    let (subscription, _) = app
        .subscribe(STORE, "https://hooks.example.com/in", &["order.placed"])
        .await;
    let manager = key(&app, STORE, "admin panel", &["webhooks:manage"]).await;
    let reader = key(&app, STORE, "reporting", &["orders:read"]).await;
    let browser = browser(&app).await;

    browser.goto("/admin").await;
    browser.wait_for_path("/admin/login", WAIT).await;
    browser.screenshot("login").await;
    for (refused, why) in [
        ("ss3_live_nope_notakey", "an unknown key"),
        (reader.as_str(), "a key without webhooks:manage"),
    ] {
        browser.goto("/admin/login").await;
        browser.fill("api_key", refused).await;
        browser.click("#sign-in").await;
        browser.wait_for("#error", WAIT).await;
        assert!(
            browser.cookie(SESSION).await.is_none(),
            "{why} got a session"
        );
    }
    browser.goto("/admin").await;
    browser.wait_for_path("/admin/login", WAIT).await;

    sign_in(&browser, &manager).await;
    let row = format!("#subscriptions tr[data-subscription-id=\"{subscription}\"]");
    assert_eq!(browser.text(&format!("{row} .name")).await, "test");
    assert_eq!(browser.text(&format!("{row} .active")).await, "active");
    assert!(browser.exists("#new-subscription").await);
    browser.screenshot("overview").await;
    let cookie = browser.cookie(SESSION).await.expect("session cookie");
    assert_eq!(cookie.http_only, Some(true), "scripts must not read it");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));

    browser.goto("/admin/event-types").await;
    browser
        .wait_for("#event-types tr[data-event-type]", WAIT)
        .await;
    browser.screenshot("event-types").await;

    let session = session_cookie(&browser).await;
    // Credentials too: the page calls the API's credential management, which only operators may use.
    for operators_only in [
        "/admin/connectors",
        "/admin/quarantine",
        "/admin/outbox",
        "/admin/credentials",
    ] {
        let response = get_with_session(&app, operators_only, &session).await;
        assert_eq!(response.status(), 403, "{operators_only} for a store key");
    }
    browser.quit().await;
}

/// Catches: the panel reading ids without the session's store (a delivery or subscription of another store shown
/// because its id was typed into the URL).
#[tokio::test]
async fn another_stores_delivery_id_typed_into_the_url_is_not_found() {
    let app = spawn_app().await;
    let target = "https://hooks.example.com/in";
    let (theirs, _) = app.subscribe(OTHER, target, &["order.placed"]).await;
    let their_delivery = app
        .first_delivery(&crate::common::event(
            "order.placed",
            OTHER,
            serde_json::json!({}),
        ))
        .await;
    app.subscribe(STORE, target, &["order.placed"]).await;
    let our_delivery = app
        .first_delivery(&crate::common::event(
            "order.placed",
            STORE,
            serde_json::json!({}),
        ))
        .await;
    let browser = signed_in(&app).await;
    let session = session_cookie(&browser).await;

    browser
        .goto(&format!("/admin/deliveries/{our_delivery}"))
        .await;
    browser.wait_for("#delivery-status", WAIT).await;
    let ours = format!("/admin/deliveries/{our_delivery}");
    let ours = get_with_session(&app, &ours, &session).await;
    assert_eq!(ours.status(), 200, "its own delivery");

    browser
        .goto(&format!("/admin/deliveries/{their_delivery}"))
        .await;
    browser.wait_for_text("h1", "Not found", WAIT).await;
    assert!(!browser.exists("#delivery-status").await);
    browser.screenshot("not-found").await;
    for path in [
        format!("/admin/deliveries/{their_delivery}"),
        format!("/admin/subscriptions/{theirs}"),
        format!("/admin/subscriptions/{theirs}/stats"),
        format!("/admin/deliveries/{}", Uuid::new_v4()),
    ] {
        let response = get_with_session(&app, &path, &session).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    browser.quit().await;
}

/// Catches: sign-out that only clears the browser's cookie while the session stays valid on the server.
#[tokio::test]
async fn signing_out_ends_the_session_and_the_old_cookie_no_longer_works() {
    let app = spawn_app().await;
    let browser = signed_in(&app).await;
    let session = session_cookie(&browser).await;
    assert_eq!(
        get_with_session(&app, "/admin", &session).await.status(),
        200
    );

    browser.submit("#sign-out").await;
    browser.wait_for_path("/admin/login", WAIT).await;
    browser.goto("/admin").await;
    browser.wait_for_path("/admin/login", WAIT).await;

    let replayed = get_with_session(&app, "/admin", &session).await;
    assert_eq!(replayed.status(), 303, "the old cookie after sign-out");
    let location = replayed
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.ends_with("/admin/login"),
        "redirects to {location}"
    );
    browser.add_cookie(SESSION, &session).await;
    browser.goto("/admin").await;
    browser.wait_for_path("/admin/login", WAIT).await;
    browser.quit().await;
}

/// Catches: a credential's secret missing from its creation page, or shown again on the list.
#[tokio::test]
async fn a_new_credentials_secret_is_shown_once_and_works() {
    let app = spawn_app().await;
    key(&app, STORE, "reporting", &["orders:read"]).await;
    let browser = operator_signed_in(&app).await;

    browser.goto("/admin/credentials").await;
    browser.wait_for("#credential-form", WAIT).await;
    assert!(credential_listed(&browser, "reporting").await);
    browser.screenshot("credentials").await;
    // The type is left at the form's first choice, an API key (the contract's `api_key`; the page's value is
    // `API_KEY`).
    browser.fill("name", "BI export").await;
    browser
        .check("#credential-form input[name=\"scopes\"][value=\"orders:read\"]")
        .await;
    browser.click("#create-credential").await;
    browser.wait_for("#credential-secret", WAIT).await;
    let secret = browser.text("#credential-secret").await;
    assert!(secret.starts_with("ss3_live_"), "{secret:?}");
    assert!(browser.exists("#copy-secret").await);
    browser.screenshot("credential-created").await;

    let validation = app.api().validate(&secret).await;
    assert!(validation.valid, "the secret shown is the key");
    assert_eq!(validation.store_id.as_deref(), Some(STORE));
    assert_eq!(validation.scopes, Some(vec!["orders:read".to_owned()]));

    browser.goto("/admin/credentials").await;
    browser.wait_for("#credentials", WAIT).await;
    assert!(credential_listed(&browser, "BI export").await);
    let secret_part = secret.rsplit('_').next().expect("secret part");
    assert!(
        !browser.source().await.contains(secret_part),
        "the secret is shown again on the list"
    );
    browser.quit().await;
}
