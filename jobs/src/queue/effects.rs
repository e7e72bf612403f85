//! Writes what a batch of finished jobs asks for, in the worker's flush transaction: the outbound attempts of every
//! kind through the one attempt writer ([`super::attempts`]), polls, then all their next jobs in one queue insert and
//! all their events in one outbox insert.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Job;
use crate::attempt::KindEffect;
use crate::connector::handler::{ConnectorDeps, PollEffect};
use crate::webhook::WebhookDeps;
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{attempts, polls};
use crate::queue;

/// Every event type this service publishes.
pub const PUBLISHED: [&str; 5] = [
    "webhook.delivered",
    "webhook.dead_lettered",
    "webhook.subscription_disabled",
    "connector.dead_lettered",
    "marketplace.order.received",
];

/// Where each published event type goes: the topic it maps to, or, unmapped, a topic named after it (the
/// specification's default: `webhook.dead_lettered` on a topic of that name).
#[derive(Debug, Clone, Default)]
pub struct Topics(BTreeMap<String, String>);

impl Topics {
    /// Topics by event type (`kafka.publish_topics`).
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    /// The topic of `event_type`.
    pub fn of<'a>(&'a self, event_type: &'a str) -> &'a str {
        self.0.get(event_type).map_or(event_type, String::as_str)
    }

    /// Every topic a published event can go to (created at start-up), each once.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = PUBLISHED.iter().map(|t| self.of(t).to_owned()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The effects of one flush, by kind.
#[derive(Default)]
pub struct Batch<'a> {
    /// Webhook delivery attempts.
    pub webhook: Vec<&'a KindEffect<WebhookDeps>>,
    /// Connector sync attempts.
    pub sync: Vec<&'a KindEffect<ConnectorDeps>>,
    /// Connector polls.
    pub poll: Vec<&'a PollEffect>,
}

/// What the effects of a flush queue and publish, written together once every effect is applied.
#[derive(Debug, Default)]
pub struct Writes {
    next_jobs: Vec<(Job, Duration)>,
    outbox: Vec<(String, Value)>,
}

impl Writes {
    /// Queue `job` to run in `run_in` (real time).
    pub fn queue(&mut self, job: Job, run_in: Duration) {
        self.next_jobs.push((job, run_in));
    }

    /// Publish `event` (an envelope, [`published_event`]) to its type's topic, keyed by `key`.
    pub fn publish_event(&mut self, key: String, event: Value) {
        self.outbox.push((key, event));
    }
}

/// Apply a batch of effects; conditional updates skip rows that moved on meanwhile (re-triggered, cancelled).
/// Returns how many jobs it queued (next attempts, polls, deferrals).
pub async fn apply(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    topics: &Topics,
) -> anyhow::Result<usize> {
    let mut writes = Writes::default();
    attempts::apply::<WebhookDeps>(conn, &batch.webhook, &mut writes).await?;
    attempts::apply::<ConnectorDeps>(conn, &batch.sync, &mut writes).await?;
    polls::apply(conn, &batch.poll, &mut writes).await?;
    let next_jobs = std::mem::take(&mut writes.next_jobs);
    let queued = next_jobs.len();
    queue::push(conn, next_jobs).await?;
    write_outbox(conn, writes, topics).await?;
    Ok(queued)
}

/// Publish `events` (key, envelope from [`published_event`]) through the outbox, in the caller's transaction.
pub async fn publish(
    conn: &mut PgConnection,
    events: Vec<(String, Value)>,
    topics: &Topics,
) -> anyhow::Result<()> {
    let writes = Writes {
        outbox: events,
        ..Writes::default()
    };
    write_outbox(conn, writes, topics).await
}

/// Insert the events of the flush into the outbox in one statement: one row per topic, carrying its events in
/// the order they were written.
async fn write_outbox(
    conn: &mut PgConnection,
    writes: Writes,
    topics: &Topics,
) -> anyhow::Result<()> {
    let mut rows: Vec<(&str, Vec<Value>)> = Vec::new();
    for (key, value) in &writes.outbox {
        let topic = topics.of(value["eventType"].as_str().unwrap_or_default());
        let message = json!({"key": key, "value": value});
        match rows.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, messages)) => messages.push(message),
            None => rows.push((topic, vec![message])),
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let (topic, messages): (Vec<&str>, Vec<Value>) = rows
        .into_iter()
        .map(|(topic, messages)| (topic, Value::Array(messages)))
        .unzip();
    sqlx::query(
        "INSERT INTO outbox (topic, messages) SELECT * FROM unnest($1::text[], $2::jsonb[])",
    )
    .bind(&topic)
    .bind(&messages)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The envelope of an event we publish, with `data` as the event's own fields.
pub fn published_event(event_type: &str, store_id: &str, data: Value) -> Value {
    json!({
        "eventId": Uuid::new_v4(),
        "eventType": event_type,
        "storeId": store_id,
        "occurredAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}
