//! Subscriptions in the panel: creating one (its secret shown once) and sending it a test webhook.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use workflows::signing::verify_ss3;

use super::{STORE, signed_in, worker};
use crate::common::browser::WAIT;
use crate::common::{Receiver, event};

/// How long the receiver may take to get a webhook the worker sent.
const RECEIVE: Duration = Duration::from_secs(10);

/// Catches: the signing secret missing from the creation page, shown again afterwards (subscription page, its
/// reload, the overview), or not the secret the webhooks are signed with.
#[tokio::test]
async fn a_new_subscriptions_signing_secret_is_shown_once_and_signs_its_webhooks() {
    let app = super::spawn_app().await;
    let mut receiver = Receiver::start(&[]).await;
    let browser = signed_in(&app).await;

    browser.click("#new-subscription").await;
    browser
        .wait_for_path("/admin/subscriptions/new", WAIT)
        .await;
    browser.fill("name", "Orders to ERP").await;
    browser.fill("target_url", &receiver.url()).await;
    browser.check("#event-order-placed").await;
    browser.screenshot("subscription-new").await;
    browser.click("#save-subscription").await;
    browser.wait_for("#signing-secret", WAIT).await;
    let secret = browser.text("#signing-secret").await;
    assert!(secret.len() >= 16, "a secret: {secret:?}");
    assert!(browser.exists("#copy-secret").await);
    browser.screenshot("subscription-created").await;

    browser.click("#subscription-link").await;
    let path = browser
        .wait_for_path_prefix("/admin/subscriptions/", WAIT)
        .await;
    let id: Uuid = path
        .trim_start_matches("/admin/subscriptions/")
        .parse()
        .unwrap_or_else(|e| panic!("#subscription-link led to {path}: {e}"));
    assert_eq!(browser.text("#subscription-name").await, "Orders to ERP");
    assert_eq!(browser.text("#subscription-status").await, "active");
    browser.screenshot("subscription").await;
    for page in ["the subscription page", "its reload", "the overview"] {
        match page {
            "its reload" => browser.reload().await,
            "the overview" => browser.goto("/admin").await,
            _ => {}
        }
        browser.wait_for("nav", WAIT).await;
        assert!(
            !browser.source().await.contains(&secret),
            "the secret is shown again on {page}"
        );
    }
    let row = format!("#subscriptions tr[data-subscription-id=\"{id}\"]");
    assert_eq!(browser.text(&format!("{row} .name")).await, "Orders to ERP");

    // The secret shown is the one the webhooks are signed with.
    app.first_delivery(&event("order.placed", STORE, json!({"orderId": "o-1"})))
        .await;
    worker(&app).await.run_pending_jobs().await.expect("run");
    let got = receiver.next(RECEIVE).await;
    assert_eq!(
        verify_ss3(&secret, &got.body, got.header("x-ss3-signature")),
        Ok(())
    );
    browser.quit().await;
}

/// Catches: the test button not going through the pipeline, its delivery page not following the delivery to
/// DELIVERED, or the delivery missing from the log (all of it, and the subscription's).
#[tokio::test]
async fn a_test_webhook_sent_from_the_subscription_page_is_delivered_and_in_the_log() {
    let app = super::spawn_app().await;
    let mut receiver = Receiver::start(&[]).await;
    let (subscription, _) = app
        .subscribe(STORE, &receiver.url(), &["order.placed"])
        .await;
    let browser = signed_in(&app).await;

    browser
        .goto(&format!("/admin/subscriptions/{subscription}"))
        .await;
    // A catalog type (its example is sent), not the default ping: the log must show what was chosen.
    let chosen = "order.placed";
    browser.select("event_type", chosen).await;
    browser.click("#send-test-button").await;
    let path = browser
        .wait_for_path_prefix("/admin/deliveries/", WAIT)
        .await;
    let delivery = path.trim_start_matches("/admin/deliveries/").to_owned();
    assert!(delivery.parse::<Uuid>().is_ok(), "redirected to {path}");

    worker(&app).await.run_pending_jobs().await.expect("run");
    let got = receiver.next(RECEIVE).await;
    assert_eq!(got.header("x-ss3-delivery"), delivery);
    assert_eq!(got.header("x-ss3-event"), chosen);
    // The page refreshes itself while the delivery is in flight.
    browser
        .wait_for_text("#delivery-status", "DELIVERED", WAIT)
        .await;
    let attempts = browser.find_all("#attempts li.attempt").await;
    assert_eq!(attempts.len(), 1, "one attempt");
    assert_eq!(
        browser.text("#attempts li.attempt .http-status").await,
        "200"
    );
    // The live update swaps the status and attempts only; the Resend button of a finished delivery comes with the
    // whole page.
    browser.reload().await;
    browser
        .wait_for_text("#delivery-status", "DELIVERED", WAIT)
        .await;
    assert!(browser.exists("#payload").await, "the payload is shown");
    assert!(
        browser.exists("#resend").await,
        "a finished delivery can be resent"
    );
    browser.screenshot("delivery").await;

    browser
        .goto(&format!("/admin/subscriptions/{subscription}"))
        .await;
    browser.click("#log-link").await;
    browser
        .wait_for_path(
            &format!("/admin/deliveries?subscription_id={subscription}"),
            WAIT,
        )
        .await;
    let row = format!("#deliveries tr[data-delivery-id=\"{delivery}\"]");
    assert_eq!(browser.text(&format!("{row} .status")).await, "DELIVERED");
    assert_eq!(browser.text(&format!("{row} .event-type")).await, chosen);
    assert_eq!(browser.text(&format!("{row} .http-status")).await, "200");
    browser.screenshot("log").await;
    browser.goto("/admin/deliveries").await;
    browser.wait_for(&row, WAIT).await;
    browser.quit().await;
}

/// Catches: a subscription's payload filter, rate limit or ordering set through the API and invisible in the panel
/// (an admin wondering why events do not arrive, arrive slowly or one at a time must see all three).
#[tokio::test]
async fn the_subscription_page_shows_its_payload_filter_rate_limit_and_ordering() {
    let app = super::spawn_app().await;
    let created: serde_json::Value = app
        .as_store(reqwest::Method::POST, "/subscriptions", STORE)
        .json(
            &json!({"name": "Big orders", "targetUrl": "http://127.0.0.1:9/", "events": ["order.*"],
                      "payloadFilter": "$.data.total > 100", "maxPerSecond": 2.5,
                      "ordering": {"key": "$.data.orderId"}}),
        )
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("created");
    let id = created["subscription"]["subscriptionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let browser = signed_in(&app).await;
    browser.goto(&format!("/admin/subscriptions/{id}")).await;
    browser.wait_for("#payload-filter", WAIT).await;
    // As Postgres normalises it.
    let filter = browser.text("#payload-filter").await;
    assert!(filter.contains(r#"($."data"."total" > 100)"#), "{filter}");
    assert!(
        browser
            .text("#rate-limit")
            .await
            .contains("2.5 deliveries per second")
    );
    let ordering = browser.text("#ordering").await;
    assert!(
        ordering.contains(r#"one at a time per value of $."data"."orderId""#),
        "{ordering}"
    );
}
