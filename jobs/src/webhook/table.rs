//! How webhook deliveries are stored: `webhook_deliveries` rows (with the last response on the row, loaded with
//! their subscription), one `webhook_delivery_attempts` row per attempt, and `webhook.delivered` /
//! `webhook.dead_lettered` events.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use workflows::attempt::{AttemptState, AttemptStatus};
use workflows::ids::{DeliveryId, SubscriptionId};
use workflows::{AttemptOutcome, DeliveryStatus};

use crate::Job;
use crate::ports::{DeliveryToSend, KeyVersions};
use crate::queue::attempts::{AttemptTable, RowUpdate, lanes};
use crate::queue::effects::published_event;
use crate::webhook::{WebhookDeps, WebhookRecord, order, stats};

/// The receiver's answer as the row and the log store it: HTTP status, body, response time, outcome.
struct Response {
    http_status: Vec<Option<i32>>,
    response_body: Vec<Option<String>>,
    elapsed_ms: Vec<i32>,
    outcome: Vec<&'static str>,
}

impl Response {
    fn of(records: &[&WebhookRecord]) -> Self {
        let mut c = Self {
            http_status: Vec::with_capacity(records.len()),
            response_body: Vec::with_capacity(records.len()),
            elapsed_ms: Vec::with_capacity(records.len()),
            outcome: Vec::with_capacity(records.len()),
        };
        for r in records {
            let (http_status, elapsed_ms, outcome) = match &r.extras.outcome {
                AttemptOutcome::Delivered { status, elapsed_ms } => {
                    (Some(i32::from(*status)), *elapsed_ms, "DELIVERED")
                }
                AttemptOutcome::Failed {
                    status, elapsed_ms, ..
                } => (status.map(i32::from), *elapsed_ms, "FAILED"),
            };
            c.http_status.push(http_status);
            c.response_body.push(r.extras.response_body.clone());
            c.elapsed_ms
                .push(elapsed_ms.clamp(0, i64::from(i32::MAX)) as i32);
            c.outcome.push(outcome);
        }
        c
    }
}

#[async_trait]
impl AttemptTable for WebhookDeps {
    const TABLE: &'static str = "webhook_deliveries";
    const ID: &'static str = "delivery_id";
    const OWNER: &'static str = "subscription_id";
    const OWNER_TABLE: &'static str = "webhook_subscriptions";
    const DONE_AT: &'static str = "delivered_at";
    const EXTRA_SET: &'static str =
        ", http_status = i.http_status, response_body = i.response_body,
           response_time_ms = i.response_time_ms";
    const EXTRA_UNNEST: &'static str = ", $9::int[], $10::text[], $11::int[]";
    const EXTRA_NAMES: &'static str = ", http_status, response_body, response_time_ms";

    fn status_name(status: AttemptStatus) -> &'static str {
        status.as_str()
    }

    async fn load(
        pool: &PgPool,
        ids: &[DeliveryId],
    ) -> anyhow::Result<HashMap<DeliveryId, DeliveryToSend>> {
        load_for_send(pool, ids).await
    }

    fn bind_extras<'q>(update: RowUpdate<'q>, records: &[&WebhookRecord]) -> RowUpdate<'q> {
        let c = Response::of(records);
        update
            .bind(c.http_status)
            .bind(c.response_body)
            .bind(c.elapsed_ms)
    }

    async fn log(conn: &mut PgConnection, records: &[&WebhookRecord]) -> sqlx::Result<()> {
        let c = Response::of(records);
        let ids: Vec<Uuid> = records
            .iter()
            .map(|r| r.loaded.delivery_id.uuid())
            .collect();
        let seqs: Vec<i32> = records.iter().map(|r| r.state.dispatch_seq).collect();
        let numbers: Vec<i32> = records.iter().map(|r| r.attempt_number as i32).collect();
        let started: Vec<DateTime<Utc>> = records.iter().map(|r| r.started_at).collect();
        let finished: Vec<DateTime<Utc>> = records.iter().map(|r| r.finished_at).collect();
        let errors: Vec<Option<&str>> = records.iter().map(|r| r.last_error.as_deref()).collect();
        let workers: Vec<&str> = records.iter().map(|r| r.worker.as_str()).collect();
        let classes: Vec<Option<String>> = records.iter().map(|r| stats::class_of(r)).collect();
        let counted = stats::Counted::of(records);
        // One statement: the attempts, the counters of those it inserted (an attempt a rescued twin already
        // logged is neither inserted nor counted again), and the health of their subscriptions' lanes.
        sqlx::query(sqlx::AssertSqlSafe(LOG_AND_COUNT.as_str()))
            .bind(&ids)
            .bind(&seqs)
            .bind(&numbers)
            .bind(&c.outcome)
            .bind(&started)
            .bind(&finished)
            .bind(&c.http_status)
            .bind(&c.response_body)
            .bind(&c.elapsed_ms)
            .bind(&errors)
            .bind(&workers)
            .bind(&classes)
            .bind(&counted.subscription)
            .bind(&counted.hour)
            .bind(&counted.store)
            .bind(&counted.result)
            .bind(&counted.bucket)
            .bind(records.iter().map(|r| r.slow).collect::<Vec<bool>>())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    fn published(r: &WebhookRecord) -> Option<(String, Value)> {
        let d = &r.loaded;
        let mut data = json!({"deliveryId": d.delivery_id, "subscriptionId": d.subscription_id, "storeId": d.store_id, "eventType": d.event_type});
        let kind = match r.decision.status {
            AttemptStatus::Delivered => "webhook.delivered",
            AttemptStatus::DeadLettered => {
                data["reason"] = json!(r.last_error.clone().unwrap_or_default());
                "webhook.dead_lettered"
            }
            _ => return None,
        };
        let event = published_event(kind, &d.store_id, data);
        Some((d.delivery_id.to_string(), event))
    }

    fn sequenced(loaded: &DeliveryToSend) -> bool {
        loaded.ordered
    }

    async fn finished(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Job>> {
        order::advance(conn, ids, false).await
    }

    async fn restarted(
        conn: &mut PgConnection,
        jobs: Vec<(Job, Duration)>,
    ) -> sqlx::Result<Vec<(Job, Duration)>> {
        order::restarted(conn, jobs).await
    }
}

/// The attempts of a flush (`$1`–`$12`), then their counters ([`stats::COUNT_LOGGED`]).
static LOG_AND_COUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, logged AS (
           INSERT INTO webhook_delivery_attempts
             (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at, http_status, response_body,
              response_time_ms, error, worker, error_class)
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                                $7::int[], $8::text[], $9::int[], $10::text[], $11::text[], $12::text[])
           ON CONFLICT (delivery_id, dispatch_seq) DO NOTHING
           RETURNING delivery_id, dispatch_seq){}",
        lanes::health("$13", "$18"),
        stats::COUNT_LOGGED.as_str()
    )
});

/// A delivery as the worker sends it, row by row: what [`load_for_send`] reads, and what the fan-out returns for the
/// deliveries it creates (so a job handed off as it is queued is not loaded again).
#[derive(sqlx::FromRow)]
pub struct SendRow {
    pub delivery_id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub store_id: String,
    pub event_type: String,
    pub event_id: Uuid,
    /// The event's body, on the first row of each event only (the rows come ordered by event).
    pub event_payload: Option<Value>,
    /// When the event occurred (NULL only if the event's row is missing).
    pub occurred_at: Option<DateTime<Utc>>,
    pub status: String,
    pub attempt_number: i32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub dispatch_seq: i32,
    pub target_url: String,
    pub subscription_active: bool,
    pub secret_version: i32,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub max_per_second: Option<f64>,
    pub trace_context: Option<String>,
    pub ordered: bool,
}

/// The statement of [`load_for_send`]: rows ordered by event, the body on the first row of each; `which` selects
/// the deliveries (`= $1` or `= ANY($1)`).
fn load_for_send_sql(which: &str) -> String {
    format!(
        "SELECT d.delivery_id, d.subscription_id, d.store_id, d.event_type, d.event_id, d.status,
            d.attempt_number, d.next_retry_at, d.dispatch_seq, s.target_url,
            (s.is_active AND s.deleted_at IS NULL) AS subscription_active, s.secret_version,
            s.previous_secret_until, s.max_per_second, d.trace_context,
            d.ordering_key IS NOT NULL AS ordered, e.occurred_at,
            CASE WHEN lag(d.event_id) OVER by_event IS DISTINCT FROM d.event_id THEN e.payload END
                AS event_payload
     FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
          LEFT JOIN ingested_events e ON e.event_id = d.event_id
     WHERE d.delivery_id {which}
     WINDOW by_event AS (ORDER BY d.event_id)
     ORDER BY d.event_id"
    )
}

/// [`load_for_send_sql`] for one delivery, and for several. A handed-off job is loaded alone (one event per ingest
/// transaction at a steady rate): for `= ANY($1)` Postgres estimates ten rows in its generic plan, finds a custom
/// plan cheaper every time and plans the statement on every call (0.39 ms, more than it takes to run:
/// docs/benchmarks.md, "The hand-off"); for `= $1` the generic plan is as cheap, so it is kept and not made again.
static LOAD_ONE: LazyLock<String> = LazyLock::new(|| load_for_send_sql("= $1"));
static LOAD_MANY: LazyLock<String> = LazyLock::new(|| load_for_send_sql("= ANY($1)"));

/// Each row with its event's body, serialised once per event and shared (a `Bytes` clone is a reference). A row
/// without one is left out: never expected (the fan-out writes the body with its deliveries, and retention keeps it
/// while they exist), and the job then finds no delivery (stale) rather than sending a wrong body.
fn with_shared_bodies(rows: Vec<SendRow>) -> impl Iterator<Item = (SendRow, Bytes)> {
    let mut body: Option<(Uuid, Bytes)> = None;
    rows.into_iter().filter_map(move |mut r| {
        if let Some(payload) = r.event_payload.take() {
            body = Some((r.event_id, super::body_bytes(&payload)));
        }
        match &body {
            Some((event, json)) if *event == r.event_id => Some((r, json.clone())),
            _ => {
                tracing::error!(delivery_id = %r.delivery_id, event_id = %r.event_id, "delivery has no event body");
                None
            }
        }
    })
}

/// Load the deliveries a batch of jobs refers to, with their subscriptions and their events' bodies, in one query.
/// A body is read, decoded and serialised once per event, and shared by its deliveries: a 1 MiB event fanned out to
/// 100 subscriptions is 1 MiB in memory, not 100.
async fn load_for_send(
    pool: &PgPool,
    ids: &[DeliveryId],
) -> anyhow::Result<HashMap<DeliveryId, DeliveryToSend>> {
    let rows: Vec<SendRow> = match ids {
        [] => Vec::new(),
        [one] => {
            sqlx::query_as(sqlx::AssertSqlSafe(LOAD_ONE.as_str()))
                .bind(one)
                .fetch_all(pool)
                .await?
        }
        _ => {
            sqlx::query_as(sqlx::AssertSqlSafe(LOAD_MANY.as_str()))
                .bind(ids)
                .fetch_all(pool)
                .await?
        }
    };
    to_send(rows)
}

/// The deliveries of `rows` (ordered by event, the body on the first row of each event), ready to send.
pub fn to_send(rows: Vec<SendRow>) -> anyhow::Result<HashMap<DeliveryId, DeliveryToSend>> {
    with_shared_bodies(rows)
        .map(|(r, body)| {
            let status = DeliveryStatus::parse(&r.status).ok_or_else(|| {
                anyhow::anyhow!("unknown delivery status {:?} in the database", r.status)
            })?;
            Ok((
                r.delivery_id,
                DeliveryToSend {
                    delivery_id: r.delivery_id,
                    subscription_id: r.subscription_id,
                    store_id: r.store_id,
                    event_type: r.event_type,
                    body,
                    occurred_at: r.occurred_at.unwrap_or_default(),
                    state: AttemptState {
                        status,
                        attempt_number: r.attempt_number.max(0) as u32,
                        next_retry_at: r.next_retry_at,
                        dispatch_seq: r.dispatch_seq,
                    },
                    target_url: r.target_url,
                    subscription_active: r.subscription_active,
                    keys: KeyVersions {
                        current: r.secret_version,
                        previous_until: r.previous_secret_until,
                    },
                    max_per_second: r.max_per_second,
                    trace_context: r.trace_context,
                    ordered: r.ordered,
                },
            ))
        })
        .collect()
}
