//! The scheduled inbound poll of a connector: pull new records from the marketplace, publish them as events, and
//! schedule the next poll an interval after this one started. A poll is not an outbound attempt (no attempt
//! counter, no dead letter): a failed poll is logged and the next one is scheduled as usual.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workflows::attempt::DUE_TOLERANCE;
use workflows::ids::ConnectorId;

use super::{ConnectorDeps, NoContext, spread};
use crate::attempt::{DeferCause, Handled};
use crate::clock::real_wait;
use connectors::{ConnectorConfig, ConnectorContext, ConnectorError, PollReport, PolledRecord};

/// Run poll number `poll_seq` of a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollConnector {
    /// The connector to poll.
    pub config_id: ConnectorId,
    /// Its `poll_seq` when queued; any other value means this poll was superseded.
    pub poll_seq: i32,
}

/// A poll as the worker loads it.
#[derive(Debug, Clone)]
pub struct PollToRun {
    /// The connector to poll.
    pub config: ConnectorConfig,
    /// Active, not deleted, and polling.
    pub active: bool,
    /// The number of the poll currently queued.
    pub poll_seq: i32,
    /// Where the last poll stopped (the marketplace's cursor).
    pub cursor: Option<String>,
    /// Time between poll starts.
    pub interval: Duration,
    /// When this poll was due (service clock).
    pub next_poll_at: Option<DateTime<Utc>>,
}

/// One poll, for the sync log, the cursor and the published events.
#[derive(Debug, Clone)]
pub struct PollRecord {
    /// The connector polled.
    pub config: ConnectorConfig,
    /// The poll's number.
    pub poll_seq: i32,
    /// When the poll started (service clock).
    pub started_at: DateTime<Utc>,
    /// When it finished (service clock).
    pub finished_at: DateTime<Utc>,
    /// Entity polled (`order`).
    pub entity_type: String,
    /// Records found, before deduplication.
    pub records: Vec<PolledRecord>,
    /// The new cursor (`None` keeps the stored one).
    pub cursor: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Requests sent to the marketplace.
    pub requests: u32,
    /// When the next poll is due (service clock).
    pub next_poll_at: DateTime<Utc>,
    /// Real time until the next poll.
    pub next_run_in: Duration,
    /// This worker's name, for the sync log.
    pub worker: String,
}

/// What a poll job asks the writer to write.
#[derive(Debug, Clone)]
pub enum PollEffect {
    /// No poll is due: nothing to write.
    None,
    /// Log a poll, store its cursor, publish its new records, schedule the next poll.
    Polled(Box<PollRecord>),
    /// Run the same poll again later (early, credentials unreadable, rate limited).
    Deferred {
        /// The connector.
        config_id: ConnectorId,
        /// The poll deferred; it is queued again as `poll_seq + 1`.
        poll_seq: i32,
        /// Real time to wait.
        run_in: Duration,
    },
}

/// Handle one poll job whose config was loaded as `loaded`.
pub async fn handle_poll(
    deps: &ConnectorDeps,
    job: &PollConnector,
    loaded: Option<PollToRun>,
) -> anyhow::Result<(Handled, PollEffect)> {
    let Some(loaded) = loaded else {
        return Ok((Handled::Stale, PollEffect::None));
    };
    if loaded.poll_seq != job.poll_seq || !loaded.active {
        return Ok((Handled::Stale, PollEffect::None));
    }
    let defer = |run_in| PollEffect::Deferred {
        config_id: job.config_id,
        poll_seq: job.poll_seq,
        run_in,
    };
    let Some(started_at) = wait_until_due(deps, &loaded).await else {
        let due = loaded.next_poll_at.unwrap_or_default();
        let run_in = real_wait(due - deps.pacing.clock.now(), deps.pacing.time_scale);
        return Ok((Handled::NotYetDue, defer(run_in)));
    };
    let (result, requests) = match deps.prepare(&loaded.config).await {
        Err(NoContext::SecretsUnavailable(why)) => {
            tracing::warn!(%why, "connector credentials unavailable; poll deferred");
            let cause = Handled::Deferred(DeferCause::SecretsUnavailable);
            return Ok((cause, defer(deps.pacing.secret_retry)));
        }
        Err(NoContext::Broken(e)) => (Err(e), 0),
        Ok((adapter, credentials, channel)) => {
            let ctx = ConnectorContext {
                config: &loaded.config,
                credentials: &credentials,
                channel: &channel,
                now: started_at,
            };
            let result = adapter.poll(&ctx, loaded.cursor.as_deref()).await;
            (result, channel.calls())
        }
    };
    if let Err(ConnectorError::RateLimited(wait)) = &result {
        let cause = Handled::Deferred(DeferCause::RateLimited);
        return Ok((cause, defer(spread(*wait))));
    }
    let record = poll_record(deps, loaded, started_at, result, requests);
    let handled = Handled::Polled {
        published: record.records.len(),
        failed: record.failure.is_some(),
    };
    Ok((handled, PollEffect::Polled(Box::new(record))))
}

/// The poll's start time, once it is due; `None` when it is early by more than the queue's precision.
/// The queue keeps whole seconds, so a poll can be claimed up to a second early: it waits for its time, so polls are
/// never closer than the interval.
async fn wait_until_due(deps: &ConnectorDeps, loaded: &PollToRun) -> Option<DateTime<Utc>> {
    let now = deps.pacing.clock.now();
    let Some(due) = loaded.next_poll_at.filter(|due| *due > now) else {
        return Some(now);
    };
    if due - DUE_TOLERANCE > now {
        return None;
    }
    tokio::time::sleep(real_wait(due - now, deps.pacing.time_scale)).await;
    Some(deps.pacing.clock.now().max(due))
}

/// The record of a poll that ran (or failed) from `started_at`.
fn poll_record(
    deps: &ConnectorDeps,
    loaded: PollToRun,
    started_at: DateTime<Utc>,
    result: Result<PollReport, ConnectorError>,
    requests: u32,
) -> PollRecord {
    let finished_at = deps.pacing.clock.now().max(started_at);
    let interval =
        chrono::Duration::from_std(loaded.interval).unwrap_or(chrono::Duration::minutes(5));
    // Polls start at least one interval apart (a late poll moves the schedule; there is never a catch-up burst).
    let next_poll_at = (started_at + interval).max(finished_at);
    let (entity_type, records, cursor, failure) = match result {
        Ok(r) => (r.entity_type, r.records, r.cursor, None),
        Err(e) => {
            tracing::warn!(config_id = %loaded.config.config_id, error = %e, "poll failed; the next one is scheduled");
            ("order".to_owned(), Vec::new(), None, Some(e.to_string()))
        }
    };
    PollRecord {
        config: loaded.config,
        poll_seq: loaded.poll_seq,
        started_at,
        finished_at,
        entity_type,
        records,
        cursor,
        failure,
        requests,
        next_run_in: real_wait(next_poll_at - finished_at, deps.pacing.time_scale),
        next_poll_at,
        worker: deps.pacing.worker.clone(),
    }
}
