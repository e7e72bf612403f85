//! Delivery statistics over the last N days (default 30), for the store and per subscription, read from the hourly
//! counters (`db::stats`), never from the delivery log. The admin panel's charts read the same function.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use workflows::StoreId;
use workflows::ids::SubscriptionId;
use workflows::stats::{day_of, latency_quantile, success_rate};

use super::auth::WebhooksAuth;
use super::deliveries::known_subscription;
use super::problem::can::*;
use super::problem::{ApiError, Problems};
use super::{AppState, Tag};
use crate::db::stats::{self, DayCounts, Scope};

/// Failed attempts of one error class.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ErrorCount {
    /// `http_<status>`, `timeout`, `connection_refused`, `tls`, `dns`, `connection` or `target_refused`.
    pub class: String,
    /// Failed attempts.
    pub count: i64,
}

/// Counters of a day or of the whole window.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct StatsCounts {
    /// Attempts that delivered on attempt 1 of their schedule.
    pub delivered_first: i64,
    /// Attempts that delivered after one or more failures.
    pub delivered_after_retries: i64,
    /// Attempts whose failure dead-lettered the delivery.
    pub dead_lettered: i64,
    /// Failed attempts that scheduled a retry (the delivery was still retrying).
    pub retries_scheduled: i64,
    /// Every attempt.
    pub attempts: i64,
    /// Delivered / (delivered + dead-lettered); absent when no delivery finished.
    pub success_rate: Option<f64>,
    /// Median response time (upper bound of its histogram bucket), ms.
    pub p50_ms: Option<i64>,
    /// 95th percentile response time (upper bound of its histogram bucket), ms.
    pub p95_ms: Option<i64>,
    /// Failed attempts by error class, most frequent first.
    pub errors: Vec<ErrorCount>,
}

impl From<&DayCounts> for StatsCounts {
    fn from(d: &DayCounts) -> Self {
        let delivered = d.delivered_first + d.delivered_retry;
        let mut errors: Vec<ErrorCount> = d
            .errors
            .iter()
            .map(|(class, count)| ErrorCount {
                class: class.clone(),
                count: *count,
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.class.cmp(&b.class)));
        Self {
            delivered_first: d.delivered_first,
            delivered_after_retries: d.delivered_retry,
            dead_lettered: d.dead_lettered,
            retries_scheduled: d.retrying,
            attempts: delivered + d.dead_lettered + d.retrying,
            success_rate: success_rate(delivered, d.dead_lettered),
            p50_ms: latency_quantile(&d.latency, 0.5),
            p95_ms: latency_quantile(&d.latency, 0.95),
            errors,
        }
    }
}

/// One UTC day.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct StatsDay {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Its counters.
    pub counts: StatsCounts,
}

/// Statistics of a window of whole UTC days ending today.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Stats {
    /// Days in the window (1–90).
    pub days: i64,
    /// Start of the window (midnight UTC of its first day).
    pub from: DateTime<Utc>,
    /// End of the window (now).
    pub to: DateTime<Utc>,
    /// The whole window.
    pub totals: StatsCounts,
    /// Every day of the window, oldest first (days without attempts have zero counters).
    pub daily: Vec<StatsDay>,
}

/// Days in a window: 30 by default, clamped to 1–90.
pub fn window_days(days: Option<i64>) -> i64 {
    days.unwrap_or(30).clamp(1, 90)
}

/// The start of a window of `days` whole UTC days ending today: midnight UTC, `days - 1` days before today's.
pub fn window_start(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    day_of(now) - Duration::days(days - 1)
}

/// The statistics of `scope` over the last `days` days (today included), as of the service clock.
pub async fn read(state: &AppState, scope: Scope<'_>, days: i64) -> Result<Stats, ApiError> {
    let to = state.clock.now();
    let from = window_start(to, days);
    let counted = stats::daily(&state.pool, scope, from, to + Duration::seconds(1)).await?;
    let mut totals = DayCounts::default();
    let daily = (0..days)
        .map(|i| {
            let day = (from + Duration::days(i)).date_naive();
            let counts = counted.get(&day).cloned().unwrap_or_default();
            totals.add(&counts);
            StatsDay {
                day,
                counts: StatsCounts::from(&counts),
            }
        })
        .collect();
    Ok(Stats {
        days,
        from,
        to,
        totals: StatsCounts::from(&totals),
        daily,
    })
}

/// The statistics resource.
pub struct StatsApi;

#[OpenApi(tag = "Tag::Deliveries")]
impl StatsApi {
    /// Delivery statistics of the store over the last `days` days (default 30, 1–90): per day and in total, by
    /// outcome, success rate, error class and response time. Read from hourly counters.
    #[oai(path = "/stats", method = "get")]
    async fn store(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        days: Query<Option<i64>>,
    ) -> Result<Json<Stats>, Problems<{ STORE_CALLER }>> {
        let scope = Scope {
            store_id: &auth.0.store_id,
            subscription: None,
        };
        Ok(Json(read(&state, scope, window_days(days.0)).await?))
    }

    /// Delivery statistics of one subscription over the last `days` days (default 30, 1–90).
    #[oai(path = "/subscriptions/:id/stats", method = "get")]
    async fn subscription(
        &self,
        auth: WebhooksAuth,
        state: Data<&AppState>,
        id: Path<SubscriptionId>,
        days: Query<Option<i64>>,
    ) -> Result<Json<Stats>, Problems<{ STORE_CALLER | NOT_FOUND }>> {
        let store_id: &StoreId = &auth.0.store_id;
        known_subscription(&state, store_id, id.0).await?;
        let scope = Scope {
            store_id,
            subscription: Some(id.0),
        };
        Ok(Json(read(&state, scope, window_days(days.0)).await?))
    }
}
