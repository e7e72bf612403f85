//! The connector sync kind of outbound job: one event pushed to one connector's marketplace, attempted on the same
//! schedule as a webhook delivery. Only its specifics live here (the adapter call and its classification, and how
//! its rows are stored: `table`); the pre-flight, deferrals, decision and effects are the attempt engine's
//! ([`crate::attempt`]) and the writer's ([`crate::queue::attempts`]).

mod table;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use workflows::attempt::AttemptState;
use workflows::connector::{SyncFailure, entity_of, sync_outcome};
use workflows::ids::{ConnectorId, ConnectorJobId};

use super::{ConnectorDeps, NoContext, Prepared, spread};
use crate::Job;
use crate::attempt::{
    AttemptRecord, Handled, KindEffect, OutboundKind, Pacing, Sent, Unprepared, run,
};
use connectors::{ConnectorConfig, ConnectorContext, ConnectorError, ConnectorEvent};

/// Make attempt `dispatch_seq` of a connector job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConnector {
    /// The job row (`connector_jobs`).
    pub job_id: ConnectorJobId,
    /// Its `dispatch_seq` when queued.
    pub dispatch_seq: i32,
    /// Its connector: the lane the job is claimed in (shared with the connector's polls).
    pub config_id: ConnectorId,
}

/// A connector job as the worker loads it.
#[derive(Debug, Clone)]
pub struct ConnectorJobToRun {
    /// The job row.
    pub job_id: ConnectorJobId,
    /// The connector it pushes to.
    pub config: ConnectorConfig,
    /// False when the connector was deactivated or deleted.
    pub config_active: bool,
    /// Status, attempts made, due time and the attempt queued.
    pub state: AttemptState,
    /// The event to push.
    pub event: ConnectorEvent,
    /// The event's trace context, stored at fan-out when tracing is exported (see [`crate::trace`]).
    pub trace_context: Option<String>,
}

/// The sync-log part of an outbound attempt's record.
#[derive(Debug, Clone)]
pub struct SyncExtras {
    /// `product`, `inventory`, `order`… (the adapter's, or the event's on failure).
    pub entity_type: String,
    /// Records written to the marketplace.
    pub records: u32,
    /// Requests sent to the marketplace (token requests included).
    pub requests: u32,
    /// Why it was skipped, when there was nothing to do.
    pub skipped: Option<String>,
    /// Why it failed, as classified for the schedule.
    pub failure: Option<SyncFailure>,
}

/// A recorded connector sync attempt.
pub type SyncRecord = AttemptRecord<ConnectorJobToRun, SyncExtras>;

/// The effect of a connector sync job.
pub type SyncEffect = KindEffect<ConnectorDeps>;

#[async_trait]
impl OutboundKind for ConnectorDeps {
    type Id = ConnectorJobId;
    type Loaded = ConnectorJobToRun;
    type Prepared = Result<Prepared, ConnectorError>;
    type Extras = SyncExtras;

    const NAME: &'static str = "connector_sync";
    const INACTIVE_REASON: &'static str = "connector config deactivated or deleted";

    fn id(loaded: &ConnectorJobToRun) -> ConnectorJobId {
        loaded.job_id
    }

    fn state(loaded: &ConnectorJobToRun) -> &AttemptState {
        &loaded.state
    }

    fn owner_active(loaded: &ConnectorJobToRun) -> bool {
        loaded.config_active
    }

    fn owner(loaded: &ConnectorJobToRun) -> Uuid {
        loaded.config.config_id.uuid()
    }

    fn trace_context(loaded: &ConnectorJobToRun) -> Option<&str> {
        loaded.trace_context.as_deref()
    }

    fn job(job_id: ConnectorJobId, owner: Uuid, dispatch_seq: i32) -> Job {
        Job::ConnectorSync(SyncConnector {
            job_id,
            dispatch_seq,
            config_id: ConnectorId(owner),
        })
    }

    fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// Missing credentials or an unknown type are not deferred: they are a failed attempt no retry can fix.
    async fn prepare(
        &self,
        loaded: &ConnectorJobToRun,
    ) -> Result<Result<Prepared, ConnectorError>, Unprepared> {
        match ConnectorDeps::prepare(self, &loaded.config).await {
            Ok(prepared) => Ok(Ok(prepared)),
            Err(NoContext::Broken(e)) => Ok(Err(e)),
            Err(NoContext::SecretsUnavailable(why)) => Err(Unprepared::SecretsUnavailable(why)),
        }
    }

    async fn send(
        &self,
        loaded: &ConnectorJobToRun,
        prepared: Result<Prepared, ConnectorError>,
        started_at: DateTime<Utc>,
    ) -> Sent<SyncExtras> {
        let (result, requests) = match prepared {
            Err(e) => (Err(e), 0),
            Ok((adapter, credentials, channel)) => {
                let ctx = ConnectorContext {
                    config: &loaded.config,
                    credentials: &credentials,
                    channel: &channel,
                    now: started_at,
                };
                let result = adapter.handle_event(&ctx, &loaded.event).await;
                (result, channel.calls())
            }
        };
        if let Err(ConnectorError::RateLimited(wait)) = &result {
            let reason =
                format!("waiting for this config's rate limit ({requests} request(s) sent)");
            return Sent::Deferred {
                run_in: spread(*wait),
                reason,
            };
        }
        let failure = result.as_ref().err().map(ConnectorError::as_failure);
        let (entity_type, records, skipped, note) = match result {
            Ok(r) => (r.entity_type, r.records, r.skipped, r.note),
            Err(_) => (
                entity_of(&loaded.event.event_type).to_owned(),
                0,
                None,
                None,
            ),
        };
        if let Some(f) = &failure {
            tracing::info!(reason = %f.reason, permanent = f.permanent, "connector sync failed");
        }
        Sent::Made {
            outcome: sync_outcome(failure.as_ref()),
            last_error: failure
                .as_ref()
                .map(|f| f.reason.clone())
                .or_else(|| skipped.clone())
                .or(note),
            extras: SyncExtras {
                entity_type,
                records,
                requests,
                skipped,
                failure,
            },
        }
    }
}

/// Handle one outbound job whose row was loaded as `loaded`. `Err` is our own infrastructure failing.
pub async fn handle_sync(
    deps: &ConnectorDeps,
    job: &SyncConnector,
    loaded: Option<ConnectorJobToRun>,
) -> anyhow::Result<(Handled, SyncEffect)> {
    run(deps, job.dispatch_seq, loaded).await
}
