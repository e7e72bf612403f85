//! Ingest: one event → its webhook delivery rows and connector job rows, and their first jobs, in the caller's transaction.

use chrono::{DateTime, Utc};
use jobs::Job;
use jobs::connector::handler::SyncConnector;
use jobs::webhook::{DeliverWebhook, SendRow};
use jobs::worker::Known;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use workflows::ids::{ConnectorId, ConnectorJobId, DeliveryId, SubscriptionId};
use workflows::{EventEnvelope, candidate_patterns};

/// Where an event came from, recorded with it.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// A Kafka message.
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// `POST /events`.
    Http,
    /// A synthetic `webhook.test` event.
    Test,
}

impl EventSource {
    /// Its columns of `ingested_events`: source, topic, partition, offset.
    fn columns(&self) -> (&'static str, Option<&str>, Option<i32>, Option<i64>) {
        match self {
            Self::Kafka {
                topic,
                partition,
                offset,
            } => (
                "kafka",
                Some(topic.as_str()),
                Some(*partition),
                Some(*offset),
            ),
            Self::Http => ("http", None, None, None),
            Self::Test => ("test", None, None, None),
        }
    }
}

/// What ingesting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// New event: these webhook deliveries and connector jobs were created and queued.
    New {
        /// One delivery per matching active subscription.
        deliveries: Vec<DeliveryId>,
        /// One job per matching active connector.
        connector_jobs: Vec<ConnectorJobId>,
    },
    /// The event id was seen before: nothing was written.
    Duplicate,
}

/// The jobs ingest queues in one transaction, with the deliveries they send as the fan-out wrote them: a job handed
/// to this process's worker as it is queued runs from these and is not loaded back (`jobs::worker::Known`).
#[derive(Default)]
pub struct NewJobs {
    /// The jobs, due now.
    pub jobs: Vec<Job>,
    /// The deliveries of the webhook jobs among them.
    pub known: Known,
}

impl NewJobs {
    /// Add `other`'s jobs and deliveries to these.
    pub fn append(&mut self, other: Self) {
        self.jobs.extend(other.jobs);
        self.known.extend(other.known);
    }
}

/// Record the event and fan it out to matching active subscriptions of its store (or only `only_subscription`), in
/// one statement. Returns the jobs to queue in the same transaction, and, when `sendable` (a worker of this process
/// may take them), their deliveries as the worker sends them; otherwise the body is not read back.
pub async fn fan_out(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    source: &EventSource,
    only_subscription: Option<SubscriptionId>,
    sendable: bool,
) -> Result<(Ingested, NewJobs), sqlx::Error> {
    let Some(Created {
        deliveries,
        connector_jobs,
        to_send,
    }) = record_and_create(conn, event, source, only_subscription, sendable).await?
    else {
        return Ok((Ingested::Duplicate, NewJobs::default()));
    };
    let mut jobs: Vec<Job> = deliveries
        .iter()
        .filter(|(_, _, queued)| *queued)
        .map(|&(delivery_id, subscription_id, _)| {
            Job::WebhookDelivery(DeliverWebhook {
                delivery_id,
                dispatch_seq: 1,
                subscription_id,
            })
        })
        .collect();
    jobs.extend(connector_jobs.iter().map(|&(job_id, config_id)| {
        Job::ConnectorSync(SyncConnector {
            job_id,
            dispatch_seq: 1,
            config_id,
        })
    }));
    // Never expected to fail (the rows were just written); the worker then loads them as it does claimed jobs.
    let known = jobs::webhook::to_send(to_send).unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "fan-out answered a delivery the worker cannot send; it loads it");
        Known::new()
    });
    let deliveries = deliveries.into_iter().map(|(id, _, _)| id).collect();
    let connector_jobs = connector_jobs.into_iter().map(|(id, _)| id).collect();
    let ingested = Ingested::New {
        deliveries,
        connector_jobs,
    };
    Ok((ingested, NewJobs { jobs, known }))
}

/// The rows an event created, each with its owner (the lane its job is claimed in). A delivery that waits in its
/// ordered line behind an earlier one (README, "Ordered delivery") is created without a job: `queued` is false.
/// `to_send` are the queued deliveries as the worker sends them (none unless asked for).
struct Created {
    deliveries: Vec<(DeliveryId, SubscriptionId, bool)>,
    connector_jobs: Vec<(ConnectorJobId, ConnectorId)>,
    to_send: Vec<SendRow>,
}

/// A row of the fan-out statement: the event's (with its stored body), a delivery's (with its subscription), or a
/// connector job's.
#[derive(sqlx::FromRow)]
struct CreatedRow {
    what: String,
    id: Uuid,
    owner: Option<Uuid>,
    queued: bool,
    payload: Option<Value>,
    occurred_at: Option<DateTime<Utc>>,
    status: Option<String>,
    attempt_number: Option<i32>,
    next_retry_at: Option<DateTime<Utc>>,
    dispatch_seq: Option<i32>,
    target_url: Option<String>,
    secret_version: Option<i32>,
    previous_secret_until: Option<DateTime<Utc>>,
    max_per_second: Option<f64>,
    ordered: Option<bool>,
}

/// The statement of [`record_and_create`]: $1 store, $2 type, $3 event id, $4 body, $5 the type's subscription
/// patterns, $6 the one subscription of a test event, $7 trace context, $8 occurred at, $9–$12 its source, $13
/// whether to answer the stored body (for the deliveries a worker of this process may take).
const RECORD_AND_CREATE: &str = "WITH subscribed AS (
       SELECT s.subscription_id, s.store_id, s.ordered, s.ordering_key, s.target_url, s.secret_version,
              s.previous_secret_until, s.max_per_second
       FROM webhook_subscriptions s
       WHERE s.store_id = $1 AND s.is_active AND s.deleted_at IS NULL
         -- A targeted (test) event goes to that subscription whatever its types and payload filter.
         AND (CASE WHEN $6::uuid IS NULL
                   THEN s.events && $5 AND (s.payload_filter IS NULL OR $4::jsonb @@ s.payload_filter)
                   ELSE s.subscription_id = $6 END)
     ), connected AS (
       SELECT c.config_id, c.store_id
       FROM connector_configs c
       WHERE $6::uuid IS NULL AND c.store_id = $1 AND c.is_active AND c.deleted_at IS NULL
         AND c.event_subscriptions && $5
     ), event AS (
       INSERT INTO ingested_events (event_id, event_type, store_id, occurred_at, source, kafka_topic,
                                    kafka_partition, kafka_offset, payload)
       VALUES ($3, $2, $1, $8, $9, $10, $11, $12,
               CASE WHEN EXISTS (SELECT FROM subscribed) OR EXISTS (SELECT FROM connected) THEN $4::jsonb END)
       ON CONFLICT (event_id) DO NOTHING
       RETURNING event_id, payload, occurred_at
     ), deliveries AS (
       INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id,
                                       trace_context, ordering_key, order_seq)
       SELECT ss3_uuid_v7(), s.subscription_id, s.store_id, $2, e.event_id, $7,
              -- The line: '' for the whole subscription, else the JSON text of the key's value ('null' when
              -- the event has none), evaluated silently (an error is no value).
              CASE WHEN NOT s.ordered THEN NULL WHEN s.ordering_key IS NULL THEN ''
                   ELSE left(COALESCE(jsonb_path_query_first($4::jsonb, s.ordering_key, '{}', TRUE)::text,
                                      'null'), 200) END,
              CASE WHEN s.ordered THEN nextval('webhook_delivery_order') END
       FROM subscribed s CROSS JOIN event e
       ON CONFLICT ON CONSTRAINT webhook_deliveries_one_per_event_and_subscription DO NOTHING
       RETURNING delivery_id, subscription_id, ordering_key, status, attempt_number, next_retry_at, dispatch_seq
     ), heads AS (
       INSERT INTO webhook_order_heads AS h (subscription_id, ordering_key, head)
       SELECT subscription_id, ordering_key, delivery_id FROM deliveries WHERE ordering_key IS NOT NULL
       -- Locked in the order a flush locks lines (jobs::webhook::order::advance), so the two cannot deadlock
       -- over the lines of one event.
       ORDER BY subscription_id, ordering_key
       ON CONFLICT (subscription_id, ordering_key) DO UPDATE SET head = COALESCE(h.head, EXCLUDED.head)
       RETURNING subscription_id, head
     ), connector_jobs AS (
       INSERT INTO connector_jobs (job_id, config_id, store_id, event_type, event_id, trace_context)
       SELECT ss3_uuid_v7(), c.config_id, c.store_id, $2, e.event_id, $7
       FROM connected c CROSS JOIN event e
       ON CONFLICT ON CONSTRAINT connector_jobs_one_per_event_and_config DO NOTHING
       RETURNING job_id, config_id
     )
     SELECT 'event' AS what, event_id AS id, NULL::uuid AS owner, TRUE AS queued,
            CASE WHEN $13::bool THEN payload END AS payload, occurred_at,
            NULL::text AS status, NULL::int AS attempt_number, NULL::timestamptz AS next_retry_at,
            NULL::int AS dispatch_seq, NULL::text AS target_url, NULL::int AS secret_version,
            NULL::timestamptz AS previous_secret_until, NULL::float8 AS max_per_second, NULL::bool AS ordered
     FROM event
     UNION ALL
     -- What the worker needs to send the delivery: a job handed off as it is queued is not loaded again.
     SELECT 'delivery', d.delivery_id, d.subscription_id, d.ordering_key IS NULL OR h.head = d.delivery_id, NULL,
            NULL, d.status, d.attempt_number, d.next_retry_at, d.dispatch_seq, s.target_url, s.secret_version,
            s.previous_secret_until, s.max_per_second, d.ordering_key IS NOT NULL
     FROM deliveries d JOIN subscribed s USING (subscription_id) LEFT JOIN heads h USING (subscription_id)
     UNION ALL
     SELECT 'connector_job', job_id, config_id, TRUE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM connector_jobs";

/// Record the event and create its webhook deliveries and connector jobs, in one statement (one round trip per
/// event); `None` when its id was recorded before (a duplicate: nothing is written). The event's body is stored once,
/// on its own row, and only when it created something; deliveries and jobs refer to it by `event_id`. A delivery to
/// an ordered subscription joins its line (`webhook_order_heads`, locked by the upsert until the batch commits): it
/// is the line's head, and queued, only when the line had none.
async fn record_and_create(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    source: &EventSource,
    only_subscription: Option<SubscriptionId>,
    sendable: bool,
) -> Result<Option<Created>, sqlx::Error> {
    let (kind, topic, partition, offset) = source.columns();
    let trace_context = jobs::trace::current();
    let created: Vec<CreatedRow> = sqlx::query_as(RECORD_AND_CREATE)
        .bind(event.store_id.as_str())
        .bind(event.event_type.as_str())
        .bind(event.event_id)
        .bind(event.webhook_body())
        .bind(candidate_patterns(&event.event_type))
        .bind(only_subscription)
        // The event's span (NULL when traces are not exported): each attempt continues its trace.
        .bind(&trace_context)
        .bind(event.occurred_at)
        .bind(kind)
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .bind(sendable)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Created::of(created, event, trace_context, sendable))
}

impl Created {
    /// The fan-out statement's rows; `None` without the event's own row (a duplicate). The queued deliveries are
    /// made sendable only when asked for (`sendable`: the statement then answered the body).
    fn of(
        rows: Vec<CreatedRow>,
        event: &EventEnvelope,
        trace_context: Option<String>,
        sendable: bool,
    ) -> Option<Self> {
        let mut created = Self {
            deliveries: Vec::new(),
            connector_jobs: Vec::new(),
            to_send: Vec::new(),
        };
        let (event_row, rows): (Vec<CreatedRow>, Vec<CreatedRow>) =
            rows.into_iter().partition(|r| r.what == "event");
        let event_row = event_row.into_iter().next()?;
        // The body goes on the first delivery only ([`jobs::webhook::to_send`] shares it).
        let mut body = event_row.payload;
        for r in rows {
            let owner = r.owner.unwrap_or_default();
            if r.what != "delivery" {
                created
                    .connector_jobs
                    .push((ConnectorJobId(r.id), ConnectorId(owner)));
                continue;
            }
            created
                .deliveries
                .push((DeliveryId(r.id), SubscriptionId(owner), r.queued));
            if r.queued && sendable {
                created.to_send.push(SendRow {
                    delivery_id: DeliveryId(r.id),
                    subscription_id: SubscriptionId(owner),
                    store_id: event.store_id.as_str().to_owned(),
                    event_type: event.event_type.as_str().to_owned(),
                    event_id: event_row.id,
                    event_payload: body.take(),
                    occurred_at: event_row.occurred_at,
                    status: r.status.unwrap_or_default(),
                    attempt_number: r.attempt_number.unwrap_or_default(),
                    next_retry_at: r.next_retry_at,
                    dispatch_seq: r.dispatch_seq.unwrap_or_default(),
                    target_url: r.target_url.unwrap_or_default(),
                    // The statement fans out to active subscriptions only.
                    subscription_active: true,
                    secret_version: r.secret_version.unwrap_or_default(),
                    previous_secret_until: r.previous_secret_until,
                    max_per_second: r.max_per_second,
                    trace_context: trace_context.clone(),
                    ordered: r.ordered.unwrap_or_default(),
                });
            }
        }
        Some(created)
    }
}

/// A message the parser or Postgres refused, kept whole (raw key and value bytes) with its reason.
#[derive(Debug, Clone)]
pub struct Quarantined<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset: with topic and partition, the row's identity (a redelivered message is recorded once).
    pub offset: i64,
    /// The message key, as received (absent when it had none).
    pub key: Option<&'a [u8]>,
    /// The message value, as received (absent for a tombstone).
    pub payload: Option<&'a [u8]>,
    /// Stable code: the parser's (`event_not_object`, `nul_character`…) or the database's
    /// (`data_exception`, `constraint_violation`…, see `db::errors::fault`).
    pub reason_code: &'a str,
    /// Human-readable reason.
    pub reason: String,
}

/// Quarantine a message (a redelivered one is recorded once). The reason is text: a NUL in it (which Postgres
/// cannot store) is written as `\0`, so a quarantine row can never fail for the reason it quarantines.
pub async fn quarantine(conn: &mut PgConnection, q: &Quarantined<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO quarantined_messages (kafka_topic, kafka_partition, kafka_offset, message_key, payload, reason_code, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT quarantined_messages_once DO NOTHING",
    )
    .bind(q.topic)
    .bind(q.partition)
    .bind(q.offset)
    .bind(q.key)
    .bind(q.payload)
    .bind(q.reason_code)
    .bind(q.reason.replace('\0', "\\0"))
    .execute(conn)
    .await?;
    Ok(())
}

/// A quarantined message as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantineRow {
    /// The row's sequence number (newer rows have larger ones).
    pub quarantine_id: i64,
    /// The topic the message was read from.
    pub kafka_topic: String,
    /// Its partition.
    pub kafka_partition: i32,
    /// Its offset in the partition.
    pub kafka_offset: i64,
    /// The message value, as received (absent for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// The stable reason code (see [`Quarantined::reason_code`]).
    pub reason_code: String,
    /// The human-readable reason.
    pub reason: String,
    /// When it was quarantined.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Most recent quarantined messages.
pub async fn list_quarantine(
    pool: &sqlx::PgPool,
    limit: i64,
) -> Result<Vec<QuarantineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT quarantine_id, kafka_topic, kafka_partition, kafka_offset, payload, reason_code, reason, received_at
         FROM quarantined_messages ORDER BY quarantine_id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
