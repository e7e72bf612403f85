//! Writes what a batch of finished jobs asks for, in the worker's flush transaction: the outbound attempts of every
//! kind through the one attempt writer ([`super::attempts`]), polls, then all their next jobs in one queue insert and
//! all their events in one outbox insert.

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

/// Topics effects publish to.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Events about our own jobs: `webhook.delivered`, `webhook.dead_lettered`, `connector.dead_lettered`.
    pub publish: String,
    /// Records pulled from marketplaces (`marketplace.order.received`).
    pub inbound: String,
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

/// Which of the [`Topics`] an event goes to.
#[derive(Debug, Clone, Copy)]
enum Topic {
    Publish,
    Inbound,
}

/// What the effects of a flush queue and publish, written together once every effect is applied.
#[derive(Debug, Default)]
pub struct Writes {
    next_jobs: Vec<(Job, Duration)>,
    outbox: Vec<(Topic, String, Value)>,
}

impl Writes {
    /// Queue `job` to run in `run_in` (real time).
    pub fn queue(&mut self, job: Job, run_in: Duration) {
        self.next_jobs.push((job, run_in));
    }

    /// Publish `event` about our own jobs (the publish topic), keyed by `key`.
    pub fn publish_event(&mut self, key: String, event: Value) {
        self.outbox.push((Topic::Publish, key, event));
    }

    /// Publish `event` pulled from a marketplace (the inbound topic), keyed by `key`.
    pub fn publish_inbound(&mut self, key: String, event: Value) {
        self.outbox.push((Topic::Inbound, key, event));
    }
}

/// Apply a batch of effects; conditional updates skip rows that moved on meanwhile (re-triggered, cancelled).
pub async fn apply(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    topics: &Topics,
) -> anyhow::Result<()> {
    let mut writes = Writes::default();
    attempts::apply::<WebhookDeps>(conn, &batch.webhook, &mut writes).await?;
    attempts::apply::<ConnectorDeps>(conn, &batch.sync, &mut writes).await?;
    polls::apply(conn, &batch.poll, &mut writes).await?;
    queue::push(conn, std::mem::take(&mut writes.next_jobs)).await?;
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
    for (which, key, value) in writes.outbox {
        let topic = match which {
            Topic::Publish => topics.publish.as_str(),
            Topic::Inbound => topics.inbound.as_str(),
        };
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
