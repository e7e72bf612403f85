//! Retention: old finished rows go, batch by batch; waiting work, recent rows and unpublished events stay.

use std::time::Duration;

use chrono::Utc;
use integration_service::db::retention::{self, Removed, Retention};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Receiver, TestApp, event};

const DAY: Duration = Duration::from_secs(86_400);

/// Set a delivery's status and age (created and last changed `days` ago, or changed `changed_days` ago).
async fn age(app: &TestApp, id: Uuid, status: &str, created_days: i32, changed_days: i32) {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, created_at = now() - make_interval(days => $3),
             updated_at = now() - make_interval(days => $4),
             next_retry_at = CASE WHEN $2 = 'FAILED' THEN now() ELSE NULL END
         WHERE delivery_id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(created_days)
    .bind(changed_days)
    .execute(&app.pool)
    .await
    .expect("age delivery");
}

async fn exists(app: &TestApp, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE delivery_id = $1)")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("exists")
}

/// Catches: retention removing waiting work, a recently re-triggered dead letter, recent rows or unpublished events;
/// leaving attempts behind their delivery (or failing on them); stopping after the first batch; two processes
/// running a pass at once.
#[tokio::test]
async fn a_pass_removes_old_finished_rows_in_batches_and_keeps_waiting_work_and_recent_rows() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    app.subscribe("store-r", &receiver.url(), &["*"]).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        let id = app
            .first_delivery(&event("order.placed", "store-r", json!({})))
            .await;
        ids.push(id.parse::<Uuid>().expect("uuid"));
    }
    // Every delivery is attempted once (each gets an attempt row).
    let worker = app.worker("w").await;
    assert_eq!(worker.run_pending_jobs().await.expect("run"), 7);
    let [old_1, old_2, old_3, recent, waiting, dead_old, dead_touched] =
        ids.try_into().expect("seven");
    for id in [old_1, old_2, old_3] {
        age(&app, id, "DELIVERED", 40, 40).await;
    }
    age(&app, recent, "DELIVERED", 29, 29).await;
    age(&app, waiting, "FAILED", 40, 40).await;
    age(&app, dead_old, "DEAD_LETTERED", 40, 31).await;
    // Re-triggered (then dead-lettered again) yesterday: it is a day old, not forty.
    age(&app, dead_touched, "DEAD_LETTERED", 40, 1).await;
    // Events: two whose deliveries go in this pass and one whose delivery waits, all 40 days old (they carry the
    // body their deliveries send); two that created nothing (no body: only the dedupe window), 8 and 6 days old.
    for id in [old_1, old_2, waiting] {
        sqlx::query(
            "UPDATE ingested_events SET received_at = now() - make_interval(days => 40)
             WHERE event_id = (SELECT event_id FROM webhook_deliveries WHERE delivery_id = $1)",
        )
        .bind(id)
        .execute(&app.pool)
        .await
        .expect("age event");
    }
    for days in [8, 6] {
        let result = app
            .api()
            .ingest(&event(
                "order.placed",
                "store-without-subscriptions",
                json!({}),
            ))
            .await;
        assert!(result.delivery_ids.is_empty(), "nothing subscribed");
        sqlx::query(
            "UPDATE ingested_events SET received_at = now() - make_interval(days => $1)
             WHERE store_id = 'store-without-subscriptions' AND received_at > now() - interval '1 day'",
        )
        .bind(days)
        .execute(&app.pool)
        .await
        .expect("age event");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM ingested_events WHERE payload IS NULL")
            .await,
        2,
        "an event that created nothing keeps no body"
    );
    sqlx::query(
        "INSERT INTO outbox (topic, messages, created_at)
         VALUES ('t', '[{\"key\": \"written long ago\", \"value\": {}}]', now() - interval '400 days')",
    )
    .execute(&app.pool)
    .await
    .expect("outbox");

    sqlx::query(
        "INSERT INTO webhook_stats_hourly
           (subscription_id, hour, store_id, delivered_first, delivered_retry, dead_lettered, retrying, latency, errors)
         SELECT gen_random_uuid(), date_trunc('hour', now()) - h * interval '1 day', 's', 1, 0, 0, 0, '{1}', '{}'
         FROM unnest(ARRAY[91, 89]) AS h",
    )
    .execute(&app.pool)
    .await
    .expect("stats");
    sqlx::query(
        "INSERT INTO admin_sessions (session_hash, store_id, operator, scopes, csrf_token, expires_at, revoked_at)
         VALUES ('\\x01', 's', true, '{}', 'c', now() - interval '1 minute', NULL),
                ('\\x02', 's', true, '{}', 'c', now() + interval '1 hour', now() - interval '1 minute'),
                ('\\x03', 's', true, '{}', 'c', now() + interval '1 hour', NULL)",
    )
    .execute(&app.pool)
    .await
    .expect("sessions");

    let settings = Retention {
        log: 30 * DAY,
        ingested_events: 7 * DAY,
        stats: 90 * DAY,
        batch: 2,
    };
    // Another process holds the pass: this one skips it.
    let mut other = app.pool.acquire().await.expect("connection");
    sqlx::query("SELECT pg_advisory_lock(hashtext('integration-service:retention'))")
        .execute(&mut *other)
        .await
        .expect("lock");
    assert_eq!(
        retention::pass(&app.pool, &settings, Utc::now())
            .await
            .expect("pass"),
        None
    );
    sqlx::query("SELECT pg_advisory_unlock(hashtext('integration-service:retention'))")
        .execute(&mut *other)
        .await
        .expect("unlock");
    drop(other);

    // The hours of days before yesterday within the 90 days: the 89-day-old one, and this test's own deliveries'
    // (recorded on the manual clock, days ago).
    let closed_hours = app
        .count(
            "SELECT count(*) FROM webhook_stats_hourly
             WHERE hour < date_trunc('day', now(), 'UTC') - interval '1 day' AND hour >= now() - interval '90 days'",
        )
        .await;
    assert!(closed_hours >= 2, "{closed_hours}");
    let removed = retention::pass(&app.pool, &settings, Utc::now())
        .await
        .expect("pass")
        .expect("not skipped");
    assert_eq!(
        removed,
        Removed {
            deliveries: 4,
            connector_rows: 0,
            ingested_events: 3,
            quarantined: 0,
            stats_and_sessions: 3,
            stats_hours_rolled_up: u64::try_from(closed_hours).expect("count"),
        },
        "three old deliveries and the old dead letter, across batches of two; the old events of the first two \
         and the 8-day-old event that created nothing; the 91-day-old statistics hour, the expired and the \
         signed-out session; the 89-day-old hour rolled up into its day"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_stats_hourly WHERE store_id = 's'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_stats_daily WHERE store_id = 's'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM admin_sessions").await,
        1,
        "the live session stays"
    );
    for id in [old_1, old_2, old_3, dead_old] {
        assert!(!exists(&app, id).await, "{id} is past retention");
    }
    for id in [recent, waiting, dead_touched] {
        assert!(exists(&app, id).await, "{id} stays");
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM webhook_deliveries d LEFT JOIN ingested_events e USING (event_id)
             WHERE e.payload IS NULL"
        )
        .await,
        0,
        "every delivery kept has its event's body, the waiting one's 40-day-old event included"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_delivery_attempts")
            .await,
        3,
        "the attempts of the removed deliveries went with them"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE topic = 't'")
            .await,
        1,
        "an unpublished row stays, however old"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox_messages WHERE topic <> 't'")
            .await,
        7,
        "the deliveries' own unpublished events (no Kafka here) stay"
    );
    assert_eq!(
        retention::pass(&app.pool, &settings, Utc::now())
            .await
            .expect("pass"),
        Some(Removed::default()),
        "nothing more to remove"
    );
}

/// Dead rows in `vacuum_probe`, as `pg_stat_user_tables` reports them (statistics reach it when a backend is idle).
async fn dead_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname = 'vacuum_probe'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("dead rows")
}

/// Catches: the sweep's vacuum ignoring its mode or threshold, vacuuming behind a server whose autovacuum runs in
/// `auto` mode, or leaving a churned table's dead rows in place.
#[tokio::test]
async fn the_sweep_vacuums_a_table_past_its_dead_row_threshold_as_its_mode_says() {
    use jobs::worker::{Vacuum, VacuumMode};
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "CREATE TABLE vacuum_probe (n int);
         INSERT INTO vacuum_probe SELECT generate_series(1, 3000);
         SELECT pg_stat_force_next_flush();
         DELETE FROM vacuum_probe;",
    )
    .execute(&app.pool)
    .await
    .expect("churn");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead_rows(&app).await < 3000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deletes never reached the statistics"
        );
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&app.pool)
            .await
            .expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vacuum = |mode, dead_rows| {
        jobs::queue::vacuum::vacuum_churned(&app.pool, Vacuum { mode, dead_rows })
    };
    let probe = "public.vacuum_probe".to_owned();

    assert!(
        vacuum(VacuumMode::Never, 100)
            .await
            .expect("never")
            .is_empty()
    );
    let above = vacuum(VacuumMode::Always, 10_000)
        .await
        .expect("high threshold");
    assert!(
        !above.contains(&probe),
        "3,000 dead rows are under 10,000: {above:?}"
    );
    let autovacuum: bool = sqlx::query_scalar("SELECT current_setting('autovacuum')::bool")
        .fetch_one(&app.pool)
        .await
        .expect("setting");
    let auto = vacuum(VacuumMode::Auto, 100).await.expect("auto");
    assert_eq!(
        auto.contains(&probe),
        !autovacuum,
        "auto vacuums only while the server's autovacuum is off (it is {}): {auto:?}",
        if autovacuum { "on" } else { "off" }
    );
    if autovacuum {
        let always = vacuum(VacuumMode::Always, 100).await.expect("always");
        assert!(always.contains(&probe), "{always:?}");
    }
    let (vacuums, dead): (i64, i64) = sqlx::query_as(
        "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'vacuum_probe'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("stats");
    assert_eq!((vacuums, dead), (1, 0), "vacuumed once, its dead rows gone");
}

/// Catches: a table that only grows (no dead rows, so the vacuum rule never reaches it) left without planner
/// statistics while the server's autovacuum is off, so plans cached while it was small keep scanning it whole; or
/// analyzing it again when nothing changed since.
#[tokio::test]
async fn the_sweep_analyzes_a_table_that_only_grew_and_not_again_until_it_changes() {
    use jobs::worker::{Vacuum, VacuumMode};
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "CREATE TABLE growth_probe (n int);
         INSERT INTO growth_probe SELECT generate_series(1, 1000);",
    )
    .execute(&app.pool)
    .await
    .expect("grow");
    let changed = async || -> i64 {
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&app.pool)
            .await
            .expect("flush");
        sqlx::query_scalar(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'growth_probe'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("stats")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while changed().await < 1000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the inserts never reached the statistics"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let analyze = |mode| {
        jobs::queue::vacuum::analyze_grown(
            &app.pool,
            Vacuum {
                mode,
                dead_rows: 5000,
            },
        )
    };
    let probe = "public.growth_probe".to_owned();
    assert!(analyze(VacuumMode::Never).await.expect("never").is_empty());
    let analyzed = analyze(VacuumMode::Always).await.expect("always");
    assert!(analyzed.contains(&probe), "1,000 new rows: {analyzed:?}");
    let rows: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'growth_probe'")
            .fetch_one(&app.pool)
            .await
            .expect("reltuples");
    assert!(
        (rows - 1000.0).abs() < 1.0,
        "its statistics count its rows: {rows}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while changed().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the analyze never reached the statistics"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = analyze(VacuumMode::Always).await.expect("again");
    assert!(!again.contains(&probe), "nothing changed since: {again:?}");
}
