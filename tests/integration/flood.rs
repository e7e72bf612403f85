//! Overload on the gateway's hot path (issue 9 item 2): a flood of well-formed random API keys, through real HTTP,
//! against the app built by `startup` with a real bcrypt cost, a small gate and a small connection budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use integration_service::startup::Roles;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::{Receiver, TestApp, TestDb, event, test_config};

/// Flood connections, each sending random keys back to back until told to stop.
const FLOOD: usize = 400;

/// Every answer the flood got: status, and whether it carried `Retry-After`.
type Answers = Vec<(u16, bool)>;

/// A well-formed key with a random secret: under `prefix` (an existing key's, a targeted guess), or a random one.
fn random_key(prefix: Option<&str>) -> String {
    let random_prefix = || integration_service::credentials::random_base62(12);
    format!(
        "ss3_live_{}_{}",
        prefix.map_or_else(random_prefix, str::to_owned),
        integration_service::credentials::random_base62(32)
    )
}

/// The public part of an API key (`ss3_live_<prefix>_<secret>`).
fn prefix_of(key: &str) -> String {
    key.trim_start_matches("ss3_live_")
        .split('_')
        .next()
        .expect("prefix")
        .to_owned()
}

/// Start `FLOOD` connections hammering `/credentials/validate` with [`random_key`]s (under `prefix` if given) from a
/// thread of their own (its own runtime, as an outside client would be: the service's runtime does not schedule
/// the attacker); `sent` counts requests started.
fn start_flood(
    url: String,
    prefix: Option<String>,
    stop: &CancellationToken,
    sent: &Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Answers> {
    let (stop, sent) = (stop.clone(), sent.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("flood runtime");
        runtime.block_on(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(FLOOD)
                .build()
                .expect("client");
            let mut flood = tokio::task::JoinSet::new();
            for _ in 0..FLOOD {
                let (http, url, stop, sent, prefix) = (
                    http.clone(),
                    url.clone(),
                    stop.clone(),
                    sent.clone(),
                    prefix.clone(),
                );
                flood.spawn(async move {
                    let mut answers = Vec::new();
                    while !stop.is_cancelled() {
                        sent.fetch_add(1, Ordering::Relaxed);
                        let r = http
                            .get(&url)
                            .bearer_auth(random_key(prefix.as_deref()))
                            .send()
                            .await
                            .expect("the service answers every flood request");
                        answers
                            .push((r.status().as_u16(), r.headers().contains_key("retry-after")));
                    }
                    answers
                });
            }
            let mut answers = Vec::new();
            while let Some(a) = flood.join_next().await {
                answers.extend(a.expect("flood task"));
            }
            answers
        })
    })
}

/// POST /events, coming back after `Retry-After` when shed; returns the final status.
async fn post_event_until_accepted(app: &TestApp, body: &Value) -> u16 {
    for _ in 0..30 {
        let r = app.post_event(body).await;
        if r.status() != 503 {
            return r.status().as_u16();
        }
        let wait: u64 = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .expect("a 503 says when to retry");
        // The behaviour under test: a client honouring the Retry-After it was given.
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    503
}

/// A new API key of `store`.
async fn create_key(app: &TestApp, store: &str) -> String {
    let created = app
        .api()
        .create_key(store, "gateway app", &["orders:read"])
        .await;
    created.key().to_owned()
}

/// Catches: random keys on `GET /credentials/validate` answered 500 ("pool timed out"), then (with the gate) shed
/// with 503 because each one was hashed against a dummy bcrypt hash and the gate filled up; a cached valid key
/// stuck behind bcrypt work; the worker starved of connections and CPU by the API (it shared one pool with it), so
/// deliveries stop during a flood. Random keys have unknown prefixes: one lookup each, no bcrypt, answered invalid
/// after the failure floor, so even a gate with one place and no queue sheds none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_api_keys_is_answered_invalid_without_bcrypt_while_cached_keys_and_the_worker_keep_working()
 {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    // A production bcrypt cost: the flood must cost what it costs in production.
    config.credentials.bcrypt_cost = 10;
    config.credentials.verify_concurrency = 1;
    config.credentials.verify_queue = 0;
    // The floor holds the flood to ~800 requests/s, so this test does not starve the timing-sensitive tests that
    // run beside it.
    config.credentials.failure_delay_ms = 500;
    config.max_db_connections = 10;
    let roles = Roles {
        api: true,
        ingest: false,
        worker: true,
    };
    let app = TestApp::spawn_with(db, config, roles).await;
    let mut receiver = Receiver::start(&[]).await;
    app.subscribe("store-flood", &receiver.url(), &["order.placed"])
        .await;
    let key = create_key(&app, "store-flood").await;
    let validate = || {
        app.http
            .get(app.url("/credentials/validate"))
            .bearer_auth(&key)
    };
    let first: Value = validate()
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(first["valid"], true, "the key is valid (and now cached)");

    let stop = CancellationToken::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = start_flood(app.url("/credentials/validate"), None, &stop, &sent);
    while sent.load(Ordering::Relaxed) < FLOOD {
        tokio::task::yield_now().await;
    }

    // During the flood: the cached key is answered, and correctly.
    let during = validate().send().await.expect("request");
    assert_eq!(during.status(), 200, "a cached valid key is never shed");
    let during: Value = during.json().await.expect("json");
    assert_eq!(during["valid"], true);
    assert_eq!(during["storeId"], "store-flood");

    // During the flood: the worker still claims and delivers.
    let accepted =
        post_event_until_accepted(&app, &event("order.placed", "store-flood", json!({}))).await;
    assert_eq!(accepted, 202, "the event is accepted during the flood");
    let delivered = receiver.next(Duration::from_secs(60)).await;
    assert_eq!(delivered.path, "/hook");

    stop.cancel();
    let answers = tokio::task::spawn_blocking(move || flood.join().expect("flood thread"))
        .await
        .expect("joined");
    let failures: Vec<&(u16, bool)> = answers
        .iter()
        .filter(|(status, retry_after)| *status >= 500 && !(*status == 503 && *retry_after))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} flood answers were 5xx other than 503 + Retry-After (first: {:?})",
        failures.len(),
        answers.len(),
        failures.first()
    );
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "random keys are answered valid:false, never shed: {} of {} were not 200",
        answers.iter().filter(|(s, _)| *s != 200).count(),
        answers.len()
    );
}

/// Catches: a valid key in steady use during a flood got a 503 once per cache TTL, because its cache entry expired
/// and its re-check then queued at the bcrypt gate behind the flood. The flood is targeted: another key's real
/// prefix with random secrets, each needing bcrypt (random prefixes never reach the gate). With refresh-ahead, a hit past half the TTL
/// re-reads the key's row in the background and re-caches it while the row still accepts the hash the key matched:
/// no bcrypt, so the refresh never waits behind the flood (it did when refreshes hashed again, and failed in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_key_in_steady_use_during_a_flood_keeps_answering_valid_across_several_cache_ttls()
{
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.credentials.bcrypt_cost = 10;
    config.credentials.cache_ttl_secs = 3;
    // One hash at a time and no queue: the flood keeps the only place, so an uncached check is always shed.
    config.credentials.verify_concurrency = 1;
    config.credentials.verify_queue = 0;
    config.credentials.verify_wait_ms = 1000;
    config.max_db_connections = 10;
    let roles = Roles {
        api: true,
        ingest: false,
        worker: false,
    };
    let app = TestApp::spawn_with(db, config, roles).await;
    let key = create_key(&app, "store-steady").await;
    let target = app
        .api()
        .create_key("store-steady", "targeted", &["orders:read"])
        .await;
    let target = prefix_of(target.key());
    let validate = || async {
        let r = app
            .http
            .get(app.url("/credentials/validate"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.ok())
    };
    let (status, first) = validate().await;
    assert_eq!(status, 200);
    assert_eq!(
        first.expect("json")["valid"],
        true,
        "the key is valid (and now cached)"
    );

    let stop = CancellationToken::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = start_flood(app.url("/credentials/validate"), Some(target), &stop, &sent);
    while sent.load(Ordering::Relaxed) < FLOOD {
        tokio::task::yield_now().await;
    }
    // The key in steady use, back to back, for more than three TTLs.
    let start = tokio::time::Instant::now();
    let mut answered = 0;
    while start.elapsed() < Duration::from_secs(10) {
        let (status, body) = validate().await;
        assert_eq!(
            (status, body.as_ref().map(|b| b["valid"].clone())),
            (200, Some(json!(true))),
            "answer {answered}, {:?} into the flood, with a 3 s cache TTL",
            start.elapsed()
        );
        answered += 1;
    }
    stop.cancel();
    let answers = tokio::task::spawn_blocking(move || flood.join().expect("flood thread"))
        .await
        .expect("joined");
    assert!(
        answers.iter().any(|(s, _)| *s == 503),
        "the flood was shed: uncached checks could not get through the gate"
    );
    assert!(
        answers
            .iter()
            .all(|(s, retry_after)| *s == 200 || (*s == 503 && *retry_after)),
        "wrong secrets are answered valid:false or shed with 503 + Retry-After"
    );
}

/// Catches: a failed check answered as soon as it was decided, so that answer times tell an unknown prefix (a
/// lookup) from a real one with a wrong secret (a lookup and bcrypt), and a client re-sending at once gets
/// unlimited tries per connection. Every failure waits for the floor, whatever the reason; a valid key does not.
#[tokio::test]
async fn every_failed_check_is_answered_no_sooner_than_the_failure_floor() {
    let db = TestDb::create().await;
    let mut config = test_config(&db);
    config.credentials.bcrypt_cost = 10;
    config.credentials.failure_delay_ms = 400;
    let roles = Roles {
        api: true,
        ingest: false,
        worker: false,
    };
    let app = TestApp::spawn_with(db, config, roles).await;
    let key = create_key(&app, "store-floor").await;
    let prefix = prefix_of(&key);
    let time = |presented: String| {
        let request = app
            .http
            .get(app.url("/credentials/validate"))
            .bearer_auth(presented);
        async move {
            let start = std::time::Instant::now();
            let r = request.send().await.expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("json");
            (status, body["valid"].clone(), start.elapsed())
        }
    };
    let floor = Duration::from_millis(400);
    for (why, presented) in [
        ("unknown prefix", random_key(None)),
        ("real prefix, wrong secret", random_key(Some(&prefix))),
        ("malformed", "ss3_live_nope".to_owned()),
    ] {
        let (status, valid, took) = time(presented).await;
        assert_eq!((status, valid), (200, json!(false)), "{why}");
        assert!(took >= floor, "{why}: answered after {took:?}");
    }
    let (status, valid, _) = time(key.clone()).await;
    assert_eq!((status, valid), (200, json!(true)));
    // Cached now: a valid key is never held back by the floor.
    let (_, _, took) = time(key).await;
    assert!(took < floor, "a cached valid key took {took:?}");
}
