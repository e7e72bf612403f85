//! Dead letters in the panel (listed, re-triggered one by one and in bulk) and the statistics they count in.

use std::time::Duration;

use jobs::worker::Worker;
use serde_json::json;

use super::{STORE, signed_in, worker};
use crate::common::browser::{Browser, WAIT};
use crate::common::{Receiver, TestApp, event};

/// Longer than the schedule's longest wait (2 h): one step of the clock makes the next attempt due.
fn past_the_next_retry() -> chrono::Duration {
    chrono::Duration::hours(3)
}

/// A new `order.placed` event of `STORE`; its one delivery's id.
async fn ingest(app: &TestApp) -> String {
    app.first_delivery(&event("order.placed", STORE, json!({"orderId": "o"})))
        .await
}

/// Run the due attempts, then each retry in turn (moving the clock past it), until the deliveries `ids`, whose
/// receiver fails every attempt, are dead-lettered after their fifth.
async fn dead_letter(app: &TestApp, worker: &Worker, ids: &[&str]) {
    worker.run_pending_jobs().await.expect("run");
    for _ in 0..4 {
        app.clock.advance(past_the_next_retry());
        worker.run_pending_jobs().await.expect("run");
    }
    for id in ids {
        let delivery = app.delivery(STORE, id).await;
        assert_eq!(delivery.status, "DEAD_LETTERED", "{id} after five attempts");
    }
}

/// Wait until the API no longer shows `id` as dead-lettered (a button's POST has been handled).
async fn wait_until_retriggered(app: &TestApp, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.delivery(STORE, id).await.status == "DEAD_LETTERED" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still dead-lettered after the button"
        );
        crate::common::wait::pause().await;
    }
}

/// The row of `id` in the dead-letter table.
fn dead_letter_row(id: &str) -> String {
    format!("#dead-letters tr[data-delivery-id=\"{id}\"]")
}

/// Catches: a dead letter missing from its page, a re-trigger button that does not restart the delivery, or a
/// delivery page that does not follow it to DELIVERED.
#[tokio::test]
async fn a_dead_letter_is_listed_and_its_retrigger_button_delivers_it() {
    let app = super::spawn_app().await;
    let mut receiver = Receiver::start(&[500; 5]).await;
    app.subscribe(STORE, &receiver.url(), &["order.placed"])
        .await;
    let id = ingest(&app).await;
    let worker = worker(&app).await;
    dead_letter(&app, &worker, &[&id]).await;
    receiver.drain();
    let browser = signed_in(&app).await;

    browser.goto("/admin/dead-letters").await;
    let row = dead_letter_row(&id);
    browser.wait_for(&row, WAIT).await;
    let reason = browser.text(&format!("{row} .reason")).await;
    assert!(
        reason.contains("500"),
        "the reason names the answer: {reason:?}"
    );
    browser.screenshot("dead-letters").await;

    browser.goto(&format!("/admin/deliveries/{id}")).await;
    browser
        .wait_for_text("#delivery-status", "DEAD_LETTERED", WAIT)
        .await;
    assert_eq!(browser.find_all("#attempts li.attempt").await.len(), 5);
    browser.screenshot("delivery-dead-lettered").await;
    browser.submit("#retrigger").await;
    wait_until_retriggered(&app, &id).await;
    worker.run_pending_jobs().await.expect("run");
    let got = receiver.next(Duration::from_secs(10)).await;
    assert_eq!(got.header("x-ss3-delivery"), id, "the same delivery, again");

    browser.goto(&format!("/admin/deliveries/{id}")).await;
    browser
        .wait_for_text("#delivery-status", "DELIVERED", WAIT)
        .await;
    assert_eq!(browser.find_all("#attempts li.attempt").await.len(), 6);
    assert!(!browser.exists("#retrigger").await, "nothing to re-trigger");
    browser.goto("/admin/dead-letters").await;
    browser.wait_for("#dead-letters", WAIT).await;
    assert!(!browser.exists(&row).await, "still listed as dead");
    browser.quit().await;
}

/// Catches: bulk re-trigger restarting other dead letters than those ticked, or miscounting them.
#[tokio::test]
async fn bulk_retrigger_restarts_the_ticked_dead_letters_and_counts_them() {
    let app = super::spawn_app().await;
    let receiver = Receiver::start(&[500; 15]).await;
    app.subscribe(STORE, &receiver.url(), &["order.placed"])
        .await;
    let ids = [ingest(&app).await, ingest(&app).await, ingest(&app).await];
    let worker = worker(&app).await;
    dead_letter(&app, &worker, &ids.each_ref().map(String::as_str)).await;
    let browser = signed_in(&app).await;

    browser.goto("/admin/dead-letters").await;
    for id in &ids {
        browser.wait_for(&dead_letter_row(id), WAIT).await;
    }
    let [first, second, left] = &ids;
    for id in [first, second] {
        browser
            .check(&format!(
                "#bulk-retrigger input[name=\"delivery_id\"][value=\"{id}\"]"
            ))
            .await;
    }
    browser.click("#retrigger-selected").await;
    browser
        .wait_for_text("#result", "Re-triggered 2 deliveries", WAIT)
        .await;
    browser.screenshot("dead-letters-retriggered").await;

    worker.run_pending_jobs().await.expect("run");
    for id in [first, second] {
        assert_eq!(app.delivery(STORE, id).await.status, "DELIVERED", "{id}");
    }
    assert_eq!(app.delivery(STORE, left).await.status, "DEAD_LETTERED");
    browser.goto("/admin/dead-letters").await;
    browser.wait_for(&dead_letter_row(left), WAIT).await;
    assert_eq!(
        browser
            .find_all("#dead-letters tr[data-delivery-id]")
            .await
            .len(),
        1,
        "only the one not ticked is left"
    );
    browser.quit().await;
}

/// A number the page shows (`1`, `1,024`, `66.7 %`).
fn number(text: &str) -> f64 {
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("a number: {text:?}: {e}"))
}

/// The totals of the statistics page the browser shows, read by their ids.
async fn totals(browser: &Browser) -> [(&'static str, f64); 5] {
    let mut out = [
        ("#total-delivered-first", 0.0),
        ("#total-delivered-retry", 0.0),
        ("#total-dead-lettered", 0.0),
        ("#total-retrying", 0.0),
        ("#total-attempts", 0.0),
    ];
    for (id, value) in &mut out {
        *value = number(&browser.text(&format!("#totals {id}")).await);
    }
    out
}

/// The sum of the cells `class` over the rows of `#daily`.
async fn daily_sum(browser: &Browser, class: &str) -> f64 {
    let cells = browser.texts(&format!("#daily {class}")).await;
    cells.iter().map(|cell| number(cell)).sum()
}

/// Catches: statistics that miscount (a retry counted as a first-time success, a dead letter's failed attempts
/// missing), a chart that does not render, or the store-wide page disagreeing with the subscription's.
#[tokio::test]
async fn the_statistics_chart_renders_and_its_totals_match_what_happened() {
    let app = super::spawn_app().await;
    // One delivery at once, so the answers go where meant: delivered first; failed once then delivered; dead.
    let receiver = Receiver::start(&[200, 500, 200]).await;
    let (subscription, _) = app
        .subscribe(STORE, &receiver.url(), &["order.placed"])
        .await;
    let worker = worker(&app).await;
    ingest(&app).await;
    worker.run_pending_jobs().await.expect("run");
    let retried = ingest(&app).await;
    worker.run_pending_jobs().await.expect("run");
    app.clock.advance(past_the_next_retry());
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(app.delivery(STORE, &retried).await.status, "DELIVERED");
    receiver.answer(&[500; 5]);
    let dead = ingest(&app).await;
    dead_letter(&app, &worker, &[&dead]).await;
    let browser = signed_in(&app).await;

    let expected = [
        ("#total-delivered-first", 1.0),
        ("#total-delivered-retry", 1.0),
        ("#total-dead-lettered", 1.0),
        ("#total-retrying", 5.0),
        ("#total-attempts", 8.0),
    ];
    for (page, shot) in [
        (
            format!("/admin/subscriptions/{subscription}/stats"),
            "stats-subscription",
        ),
        ("/admin/stats".to_owned(), "stats"),
    ] {
        browser.goto(&page).await;
        browser.wait_for("#chart canvas", WAIT).await;
        assert_eq!(totals(&browser).await, expected, "{page}");
        let rate = number(&browser.text("#totals #total-success-rate").await);
        assert!(
            (rate - 200.0 / 3.0).abs() < 0.6,
            "{page}: 2 of 3 finished deliveries delivered, shown as {rate}"
        );
        let errors = "#errors tr[data-error-class=\"http_500\"] .count";
        assert_eq!(number(&browser.text(errors).await), 6.0, "{page}: six 500s");
        assert_eq!(daily_sum(&browser, ".delivered-first").await, 1.0, "{page}");
        assert_eq!(daily_sum(&browser, ".dead-lettered").await, 1.0, "{page}");
        browser.screenshot(shot).await;
    }
    browser.quit().await;
}
