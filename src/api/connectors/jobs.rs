//! A connector's outbound jobs: list (dead letters included), re-trigger, and "poll now".

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use workflows::connector::parse_job_status;
use workflows::ids::{ConnectorId, ConnectorJobId, EventId};

use super::load;
use crate::api::auth::OperatorStoreAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::{AppState, Tag, next_page, page_limit};
use crate::db::connectors::{self, JobRow};

/// An outbound connector job.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorJob {
    /// The job's id (`{job_id}` of the re-trigger route).
    pub job_id: ConnectorJobId,
    /// The connector it runs for.
    pub config_id: ConnectorId,
    /// The type of the event it carries to the marketplace.
    pub event_type: String,
    /// The event it carries.
    pub event_id: EventId,
    /// PENDING, FAILED (retry scheduled), SUCCEEDED, DEAD_LETTERED or CANCELLED.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempt_number: i32,
    /// When the next attempt is due, while FAILED.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When it reached a final status (SUCCEEDED, DEAD_LETTERED or CANCELLED).
    pub completed_at: Option<DateTime<Utc>>,
    /// The last attempt's error, or why it was cancelled.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of jobs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectorJobPage {
    /// Newest first.
    pub items: Vec<ConnectorJob>,
    /// Pass as `cursor` for older jobs; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A queued poll.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PollQueued {
    /// Its number (it appears in the sync log as `pollSeq`).
    pub poll_seq: i32,
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// The poll is queued; it appears in the sync log under its `pollSeq`.
    #[oai(status = 202)]
    Accepted(Json<PollQueued>),
}

impl From<JobRow> for ConnectorJob {
    fn from(r: JobRow) -> Self {
        Self {
            job_id: r.job_id,
            config_id: r.config_id,
            event_type: r.event_type,
            event_id: r.event_id,
            status: r.status,
            attempt_number: r.attempt_number,
            next_retry_at: r.next_retry_at,
            completed_at: r.completed_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Connector jobs and polls.
pub struct JobsApi;

#[OpenApi(tag = "Tag::Connectors")]
impl JobsApi {
    /// Outbound jobs, newest first; `status=DEAD_LETTERED` lists the dead letters.
    #[oai(path = "/connectors/:id/jobs", method = "get")]
    pub async fn jobs(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
        status: Query<Option<String>>,
        cursor: Query<Option<ConnectorJobId>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<ConnectorJobPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        load(&state, &auth.0.store_id, id.0).await?;
        if let Some(s) = status
            .0
            .as_deref()
            .filter(|s| parse_job_status(s).is_none())
        {
            return Err(ApiError::Invalid(
                ProblemCode::InvalidStatus,
                format!("{s:?} is not a job status"),
            )
            .into());
        }
        let limit = page_limit(limit.0);
        let rows = connectors::list_jobs(
            &state.pool,
            auth.0.store_id.as_str(),
            id.0,
            status.0.as_deref(),
            cursor.0,
            limit + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let (items, next_cursor) = next_page(rows, limit, |j: &ConnectorJob| j.job_id.to_string());
        Ok(Json(ConnectorJobPage { items, next_cursor }))
    }

    /// Re-trigger a dead-lettered or cancelled job: a new schedule of five attempts, the first now.
    #[oai(path = "/connectors/:id/jobs/:job_id/retrigger", method = "post")]
    pub async fn retrigger(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
        job_id: Path<ConnectorJobId>,
    ) -> Result<Json<ConnectorJob>, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let store = auth.0.store_id.as_str();
        let config = load(&state, &auth.0.store_id, id.0).await?;
        if let Some(job) = connectors::retrigger(&state.pool, store, id.0, job_id.0)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(Json(job.into()));
        }
        match connectors::get_job(&state.pool, store, id.0, job_id.0)
            .await
            .map_err(ApiError::from)?
        {
            None => Err(ApiError::NotFound(
                ProblemCode::ConnectorJobNotFound,
                format!("job {} does not exist", job_id.0),
            )
            .into()),
            Some(_) if !config.is_active => Err(ApiError::Conflict(
                ProblemCode::ConnectorInactive,
                "activate the connector first".into(),
            )
            .into()),
            Some(j) => Err(ApiError::Conflict(
                ProblemCode::JobNotRetriggerable,
                format!(
                    "job is {}; only DEAD_LETTERED or CANCELLED jobs are re-triggered",
                    j.status
                ),
            )
            .into()),
        }
    }

    /// Poll now (supersedes the scheduled poll; the schedule continues from this one).
    #[oai(path = "/connectors/:id/poll", method = "post")]
    pub async fn poll_now(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
    ) -> Result<Accepted, Problems<{ STORE_CALLER | POSTS | NOT_FOUND | CONFLICT }>> {
        let config = load(&state, &auth.0.store_id, id.0).await?;
        let mut tx = state.pool.begin().await.map_err(ApiError::from)?;
        let Some(poll_seq) = connectors::schedule_poll(
            &mut tx,
            id.0,
            state.connectors.pacing.clock.now(),
            Duration::ZERO,
        )
        .await
        .map_err(ApiError::from)?
        else {
            let why = if config.poll_interval_secs.is_none() {
                "this connector does not poll"
            } else {
                "activate the connector first"
            };
            return Err(ApiError::Conflict(ProblemCode::PollNotPossible, why.into()).into());
        };
        tx.commit().await.map_err(ApiError::from)?;
        Ok(Accepted::Accepted(Json(PollQueued { poll_seq })))
    }
}
