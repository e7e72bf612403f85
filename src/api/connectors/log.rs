//! A connector's sync log: every outbound attempt and every poll.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use workflows::ids::{ConnectorId, ConnectorJobId, SyncRunId};

use super::load;
use crate::api::auth::OperatorStoreAuth;
use crate::api::code::ProblemCode;
use crate::api::problem::can::*;
use crate::api::problem::{ApiError, Problems};
use crate::api::types::FilterText;
use crate::api::{AppState, Tag, next_page, page_limit};
use crate::db::connectors::{self, LogFilter, SyncRunRow};

/// One run in the sync log: an outbound attempt or a poll.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SyncRun {
    /// The run's id; pass the last one as `cursor` for older runs.
    pub run_id: SyncRunId,
    /// INBOUND (a poll) or OUTBOUND (a job's attempt).
    pub direction: String,
    /// What was synced (`order`, `product`, `inventory`, …), as the connector names it.
    pub entity_type: String,
    /// Records written (outbound) or newly published (inbound).
    pub record_count: i32,
    /// SUCCEEDED, FAILED or SKIPPED.
    pub status: String,
    /// The error, or why it was skipped; on success, what was left out on purpose (e.g. eBay offers not published).
    pub error_summary: Option<String>,
    /// Outbound: the job the attempt belongs to.
    pub job_id: Option<ConnectorJobId>,
    /// Outbound: the type of the job's event.
    pub event_type: Option<String>,
    /// Outbound: the attempt's position in its schedule (1-5).
    pub attempt_number: Option<i32>,
    /// Inbound: the poll's number (as `POST /connectors/{id}/poll` answered it).
    pub poll_seq: Option<i32>,
    /// HTTP requests sent to the marketplace during the run.
    pub requests: i32,
    /// The worker that ran it (host name and process id).
    pub worker: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
}

/// A page of the sync log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SyncRunPage {
    /// Runs, newest first.
    pub items: Vec<SyncRun>,
    /// Pass as `cursor` for older runs; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<SyncRunRow> for SyncRun {
    fn from(r: SyncRunRow) -> Self {
        Self {
            run_id: r.run_id,
            direction: r.direction,
            entity_type: r.entity_type,
            record_count: r.record_count,
            status: r.status,
            error_summary: r.error_summary,
            job_id: r.job_id,
            event_type: r.event_type,
            attempt_number: r.attempt_number,
            poll_seq: r.poll_seq,
            requests: r.requests,
            worker: r.worker,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// 422 unless `direction` and `status` are values the sync log records.
fn check_filters(direction: Option<&str>, status: Option<&str>) -> Result<(), ApiError> {
    if let Some(d) = direction.filter(|d| !["INBOUND", "OUTBOUND"].contains(d)) {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidDirection,
            format!("{d:?} is not INBOUND or OUTBOUND"),
        ));
    }
    if let Some(s) = status.filter(|s| !["SUCCEEDED", "FAILED", "SKIPPED"].contains(s)) {
        return Err(ApiError::Invalid(
            ProblemCode::InvalidStatus,
            format!("{s:?} is not SUCCEEDED, FAILED or SKIPPED"),
        ));
    }
    Ok(())
}

/// The sync log.
pub struct SyncLogApi;

#[OpenApi(tag = "Tag::Connectors")]
impl SyncLogApi {
    /// The sync log: every outbound attempt and every poll, newest first.
    #[oai(path = "/connectors/:id/sync-log", method = "get")]
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_log(
        &self,
        auth: OperatorStoreAuth,
        state: Data<&AppState>,
        id: Path<ConnectorId>,
        direction: Query<Option<String>>,
        status: Query<Option<String>>,
        #[oai(name = "entityType")] entity_type: Query<Option<FilterText>>,
        since: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<SyncRunId>>,
        limit: Query<Option<i64>>,
    ) -> Result<Json<SyncRunPage>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        load(&state, &auth.0.store_id, id.0).await?;
        check_filters(direction.0.as_deref(), status.0.as_deref())?;
        let limit = page_limit(limit.0);
        let filter = LogFilter {
            direction: direction.0,
            status: status.0,
            entity_type: entity_type.0.map(FilterText::into_inner),
            since: since.0,
            before: cursor.0,
        };
        let store = auth.0.store_id.as_str();
        let rows = connectors::sync_log(&state.pool, store, id.0, &filter, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let (items, next_cursor) = next_page(rows, limit, |r: &SyncRun| r.run_id.to_string());
        Ok(Json(SyncRunPage { items, next_cursor }))
    }
}
