//! Failures and pacing: the retry schedule into dead letters and re-trigger, Retry-After, a config's rate limit,
//! refusals no retry can fix, renewed tokens.

use super::*;

/// Catches: connector failures not following the 1/5/30/120-minute schedule, no dead letter or event after the
/// fifth, a re-trigger that does not restart the schedule. Run for every connector.
#[tokio::test]
async fn channel_5xx_and_429_are_retried_on_the_schedule_then_dead_lettered_and_retrigger_recovers()
{
    for (kind, failing_path, status) in [
        ("amazon", "/listings/", 503),
        ("ebay", "/sell/", 500),
        ("google_shopping", "/products/", 429),
    ] {
        let (app, fake) = app_with_fake().await;
        let body = match kind {
            "amazon" => amazon_body(0),
            "ebay" => ebay_body(),
            _ => google_body(),
        };
        let id = create_id(&app, &body).await;
        fake.register_gcp();
        fake.fail(failing_path, 5, status, None);
        app.post_event(&event("product.updated", STORE, product("TS-42")))
            .await;
        let worker = app.worker("w").await;
        let due = due_times();
        for (n, at) in due.iter().enumerate() {
            let what = format!("{kind}: attempt {}", n + 1);
            if n > 0 {
                app.assert_not_run_early(&worker, *at, &what).await;
            }
            app.assert_runs_at(&worker, *at, &what).await;
            let job = jobs(&app, &id, "").await.remove(0);
            if n < 4 {
                assert_eq!(job.status, "FAILED", "{kind}");
                assert_eq!(
                    job.next_retry_at,
                    Some(due[n + 1]),
                    "{kind}: next attempt after attempt {}",
                    n + 1
                );
            }
        }
        let job = jobs(&app, &id, "status=DEAD_LETTERED").await.remove(0);
        assert_eq!(job.attempt_number, 5, "{kind}");
        assert!(
            job.last_error
                .as_deref()
                .unwrap_or("")
                .contains(&format!("HTTP {status}")),
            "{kind}: {job:?}"
        );
        let failed = sync_log(&app, &id, "status=FAILED").await;
        assert_eq!(failed.len(), 5, "{kind}: every attempt is in the sync log");
        let started: Vec<chrono::DateTime<chrono::Utc>> =
            failed.iter().rev().map(|r| r.started_at).collect();
        assert_eq!(started, due.to_vec(), "{kind}");
        assert_eq!(app.count("SELECT count(*) FROM outbox_messages WHERE payload->>'eventType' = 'connector.dead_lettered'").await, 1, "{kind}");

        let job_id = job.job_id;
        let again = app
            .as_store(
                Method::POST,
                &format!("/connectors/{id}/jobs/{job_id}/retrigger"),
                STORE,
            )
            .send()
            .await
            .expect("req");
        assert_eq!(again.status(), 200, "{kind}");
        worker.run_pending_jobs().await.expect("run");
        let done = jobs(&app, &id, "").await.remove(0);
        assert_eq!(done.status, "SUCCEEDED", "{kind}: the channel recovered");
        assert_eq!(done.attempt_number, 1, "{kind}: the schedule restarted");
    }
}

/// Catches: a 429 not waited out, or the config's other calls not paced after it.
#[tokio::test]
async fn a_short_retry_after_is_waited_out_in_place() {
    let (app, fake) = app_with_fake().await;
    let id = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 429, Some(1));
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]}),
    ))
    .await;
    app.worker("w").await.run_pending_jobs().await.expect("run");
    let calls = fake.api_calls();
    assert_eq!(
        calls.len(),
        3,
        "429, the same request again, then the second SKU"
    );
    assert_eq!(
        calls[0].path, calls[1].path,
        "the refused request was sent again"
    );
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(950),
        "waited {:?}",
        calls[1].at - calls[0].at
    );
    let log = sync_log(&app, &id, "").await;
    assert_eq!(
        (log[0].status.as_str(), log[0].requests),
        ("SUCCEEDED", 4),
        "{log:?}"
    );
}

/// Catches: a config's rate limit not enforced, or jobs waiting for it counted as failed attempts (a backlog
/// larger than the limit would otherwise dead-letter work the channel never refused).
#[tokio::test]
async fn a_configs_rate_limit_paces_its_calls_and_waiting_jobs_use_no_attempts() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.connectors.max_inline_wait_ms = 100;
    let fake = FakeChannels::start().await;
    fake.configure(&mut config);
    let app = TestApp::spawn_with(db, config, Roles::API).await;
    let id = rate_limited_backlog(&app, 2.0, 4).await;
    let worker = app.worker("w").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        worker.run_pending_jobs().await.expect("run");
        let jobs = jobs(&app, &id, "").await;
        if jobs.iter().all(|j| j.status == "SUCCEEDED") {
            assert!(
                jobs.iter().all(|j| j.attempt_number == 1),
                "waiting counted as attempts: {jobs:?}"
            );
            break;
        }
        assert!(
            jobs.iter()
                .all(|j| j.status != "FAILED" && j.status != "DEAD_LETTERED"),
            "{jobs:?}"
        );
        not_yet(deadline, &jobs).await;
    }
    let mut calls = fake.calls();
    calls.sort_by_key(|c| c.at);
    assert_eq!(
        calls.len(),
        5,
        "one LWA exchange and four PATCHes, nothing repeated"
    );
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(450),
            "calls {gap:?} apart at 2 per second"
        );
    }
}

/// Catches: a refusal no retry can fix being retried for hours, an expired token never renewed, a failed poll
/// losing its cursor or its schedule, and "test connection" hiding why it failed.
#[tokio::test]
async fn refusals_dead_letter_at_once_expired_tokens_are_renewed_and_failed_polls_keep_their_cursor()
 {
    let (app, fake) = app_with_fake().await;
    let worker = app.worker("w").await;

    // 400 from Amazon: the listing itself is wrong; dead-lettered after one attempt.
    let amazon = create_id(&app, &amazon_body(0)).await;
    fake.fail("/listings/", 1, 400, None);
    app.post_event(&event("product.updated", STORE, product("BAD")))
        .await;
    worker.run_pending_jobs().await.expect("run");
    let job = jobs(&app, &amazon, "").await.remove(0);
    assert_eq!(
        (job.status.as_str(), job.attempt_number),
        ("DEAD_LETTERED", 1),
        "{job:?}"
    );

    // 401 from eBay: the cached token is dropped, the attempt is retried, and the retry fetches a new token.
    let ebay = create_id(&app, &ebay_body()).await;
    fake.set_inventory_item("E-1", 0);
    fake.clear_calls();
    fake.fail("/sell/", 1, 401, None);
    app.post_event(&event(
        "inventory.updated",
        STORE,
        json!({"sku": "E-1", "quantity": 1}),
    ))
    .await;
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(jobs(&app, &ebay, "").await[0].status, "FAILED");
    app.clock.set(t0() + Minutes::minutes(1));
    worker.run_pending_jobs().await.expect("run");
    assert_eq!(jobs(&app, &ebay, "").await[0].status, "SUCCEEDED");
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.path == "/identity/v1/oauth2/token")
            .count(),
        2,
        "a new token after the 401"
    );

    // A failed poll is logged, keeps its cursor, and the next poll is still scheduled.
    fake.add_order("113-P", "2026-11-20T10:00:00Z");
    let polling = create_id(&app, &amazon_body(600)).await;
    fake.fail("/orders/2026-01-01/orders", 1, 503, None);
    worker.run_pending_jobs().await.expect("run");
    let failed = sync_log(&app, &polling, "direction=INBOUND").await;
    assert_eq!(failed[0].status, "FAILED");
    assert!(
        failed[0]
            .error_summary
            .as_deref()
            .unwrap_or("")
            .contains("503"),
        "{failed:?}"
    );
    let config = app.api().connector(STORE, &polling).await;
    assert_eq!(config.poll_cursor, None, "the cursor did not move");
    let next = config.next_poll_at.expect("next poll");
    app.clock.set(next);
    worker.run_pending_jobs().await.expect("run");
    let runs = sync_log(&app, &polling, "direction=INBOUND").await;
    assert_eq!(
        (runs[0].status.as_str(), runs[0].record_count),
        ("SUCCEEDED", 1),
        "{runs:?}"
    );

    // Test connection with credentials the channel refuses says so.
    let replaced = app
        .as_store(Method::PUT, &format!("/connectors/{ebay}/credentials"), STORE)
        .json(&json!({"apiKey": EBAY_CLIENT_ID, "apiSecret": "wrong", "refreshToken": EBAY_REFRESH_TOKEN}))
        .send()
        .await
        .expect("req");
    assert_eq!(replaced.status(), 204);
    let tested: Value = app
        .as_store(Method::POST, &format!("/connectors/{ebay}/test"), STORE)
        .json_answer()
        .await;
    assert_eq!(tested["ok"], false);
    assert!(
        tested["detail"]
            .as_str()
            .unwrap_or("")
            .contains("refused the credentials"),
        "{tested}"
    );
}
