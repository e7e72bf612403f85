//! The two connector jobs: an outbound sync of one event to one config (same schedule and dead-letter path as a
//! webhook delivery), and a scheduled inbound poll. Like the webhook handler, they return effects as values.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use workflows::connector::{SyncFailure, decide_sync, entity_of};
use workflows::{DeliveryStatus, OutcomeDecision};

use crate::clock::{Clock, real_wait};
use crate::ports::SecretError;
use crate::webhook::DUE_TOLERANCE;
use connectors::{
    ChannelClient, ChannelHttp, ConfiguredConnector, ConnectorConfig, ConnectorContext,
    ConnectorError, ConnectorEvent, Credentials, PolledRecord, RateGate, Registry,
};

/// Make attempt `dispatch_seq` of a connector job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConnector {
    /// The job row (`connector_jobs`).
    pub job_id: Uuid,
    /// Its `dispatch_seq` when queued.
    pub dispatch_seq: i32,
}

/// Run poll number `poll_seq` of a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollConnector {
    /// The config.
    pub config_id: Uuid,
    /// Its `poll_seq` when queued; any other value means this poll was superseded.
    pub poll_seq: i32,
}

/// A connector job as the worker loads it.
#[derive(Debug, Clone)]
pub struct ConnectorJobToRun {
    /// Job id.
    pub job_id: Uuid,
    /// Its config.
    pub config: ConnectorConfig,
    /// False when the config was deactivated or deleted.
    pub config_active: bool,
    /// Status.
    pub status: DeliveryStatus,
    /// Attempts in the current schedule.
    pub attempt_number: u32,
    /// Due time of the next attempt.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Current attempt number queued.
    pub dispatch_seq: i32,
    /// The event.
    pub event: ConnectorEvent,
}

/// A poll as the worker loads it.
#[derive(Debug, Clone)]
pub struct PollToRun {
    /// Its config.
    pub config: ConnectorConfig,
    /// Active and not deleted.
    pub active: bool,
    /// Current poll number.
    pub poll_seq: i32,
    /// Where the last poll stopped.
    pub cursor: Option<String>,
    /// Time between polls.
    pub interval: Duration,
    /// When this poll was due.
    pub next_poll_at: Option<DateTime<Utc>>,
}

/// Reads connector credentials.
#[async_trait]
pub trait ConnectorSecrets: Send + Sync {
    /// Every credential field set for the config (an empty set when none is).
    async fn credentials(&self, config_id: Uuid) -> Result<Credentials, SecretError>;
}

/// Dependencies of the connector handlers.
#[derive(Clone)]
pub struct ConnectorDeps {
    /// Adapters.
    pub registry: Arc<Registry>,
    /// Credentials.
    pub secrets: Arc<dyn ConnectorSecrets>,
    /// HTTP.
    pub http: Arc<dyn ChannelHttp>,
    /// Per-config rate limits, shared by every process.
    pub gate: Arc<dyn RateGate>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Multiplies real waits (see `ScaledClock`).
    pub time_scale: f64,
    /// Wait when the secret store is unavailable.
    pub secret_retry: Duration,
    /// A `Retry-After` up to this is waited out in place.
    pub max_inline_wait: Duration,
    /// This worker's name.
    pub worker: String,
}

/// What a connector job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// An attempt was made.
    Attempted { status: DeliveryStatus },
    /// A poll ran (or failed; the next one is scheduled either way).
    Polled { published: usize, failed: bool },
    /// Superseded or unknown: nothing was done.
    Stale,
    /// The config is inactive: retries stop.
    Cancelled,
    /// Credentials could not be read: deferred without counting an attempt.
    Deferred,
    /// Ran before its due time: re-queued for then.
    NotYetDue,
}

/// One outbound attempt, for the sync log and the job row.
#[derive(Debug, Clone)]
pub struct SyncRecord {
    /// The job as loaded.
    pub job: ConnectorJobToRun,
    /// 1-based attempt number.
    pub attempt_number: u32,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// `product`, `inventory`, `order`… (the adapter's, or the event's on failure).
    pub entity_type: String,
    /// Records written.
    pub records: u32,
    /// Requests sent to the channel.
    pub requests: u32,
    /// Why it was skipped, when there was nothing to do.
    pub skipped: Option<String>,
    /// Why it failed.
    pub failure: Option<SyncFailure>,
    /// The job's next state.
    pub decision: OutcomeDecision,
    /// Real time until the next attempt, when there is one.
    pub next_run_in: Option<Duration>,
    /// Worker.
    pub worker: String,
}

/// One poll, for the sync log, the cursor and the published events.
#[derive(Debug, Clone)]
pub struct PollRecord {
    /// The config.
    pub config: ConnectorConfig,
    /// The poll's number.
    pub poll_seq: i32,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// Entity polled.
    pub entity_type: String,
    /// Records found.
    pub records: Vec<PolledRecord>,
    /// New cursor.
    pub cursor: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Requests sent.
    pub requests: u32,
    /// When the next poll is due (service clock) and in how long (real time).
    pub next_poll_at: DateTime<Utc>,
    /// Real time until the next poll.
    pub next_run_in: Duration,
    /// Worker.
    pub worker: String,
}

/// What a connector job asks the runner to write.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Nothing.
    None,
    /// Log an outbound attempt and move the job on.
    Synced(Box<SyncRecord>),
    /// Stop retrying a job.
    Cancel {
        job_id: Uuid,
        dispatch_seq: i32,
        reason: String,
    },
    /// Queue the same attempt again later without counting it.
    Defer {
        job_id: Uuid,
        dispatch_seq: i32,
        run_in: Duration,
        reason: Option<String>,
    },
    /// Log a poll, store its cursor, publish its new records, schedule the next poll.
    Polled(Box<PollRecord>),
    /// Run the same poll again later (credentials unreadable).
    PollDeferred {
        config_id: Uuid,
        poll_seq: i32,
        run_in: Duration,
    },
}

/// A rate-limited job waits `wait` plus up to as much again, so a backlog deferred together does not come back
/// all at once (real time: rate limits run on Postgres' clock, whatever the service clock's scale).
fn spread(wait: Duration) -> Duration {
    let jitter = wait.as_millis().max(200) as u64;
    wait + Duration::from_millis(rand::random_range(0..jitter))
}

/// Why a context could not be built.
pub enum NoContext {
    /// The secret store is unavailable: try later.
    SecretsUnavailable(String),
    /// Something a retry cannot fix (unknown type, bad settings, missing credentials).
    Broken(ConnectorError),
}

impl ConnectorDeps {
    /// The adapter bound to a config's parsed settings, its credentials and its rate-limited channel.
    pub async fn prepare(
        &self,
        config: &ConnectorConfig,
    ) -> Result<(Arc<dyn ConfiguredConnector>, Credentials, ChannelClient), NoContext> {
        let adapter = self
            .registry
            .parse_stored_settings(&config.connector_type, &config.settings)
            .map_err(|e| NoContext::Broken(e.into()))?;
        let credentials = match self.secrets.credentials(config.config_id).await {
            Ok(c) => c,
            Err(SecretError::Unavailable(why)) => return Err(NoContext::SecretsUnavailable(why)),
            Err(SecretError::NotFound) => Credentials::default(),
        };
        for field in adapter.required_credentials() {
            credentials.require(*field).map_err(NoContext::Broken)?;
        }
        let channel = ChannelClient::new(
            self.http.clone(),
            self.gate.clone(),
            config.config_id,
            adapter.rate_limit(),
            self.max_inline_wait,
        );
        Ok((adapter, credentials, channel))
    }
}

/// Handle one outbound job whose row was loaded as `loaded`. `Err` is our own infrastructure failing.
pub async fn handle_sync(
    deps: &ConnectorDeps,
    job: &SyncConnector,
    loaded: Option<ConnectorJobToRun>,
) -> anyhow::Result<(Handled, Effect)> {
    let Some(loaded) = loaded else {
        return Ok((Handled::Stale, Effect::None));
    };
    if loaded.dispatch_seq != job.dispatch_seq || !loaded.status.awaits_attempt() {
        return Ok((Handled::Stale, Effect::None));
    }
    let (job_id, dispatch_seq) = (loaded.job_id, loaded.dispatch_seq);
    let now = deps.clock.now();
    if let Some(due) = loaded.next_retry_at
        && due - DUE_TOLERANCE > now
    {
        let run_in = real_wait(due - now, deps.time_scale);
        return Ok((
            Handled::NotYetDue,
            Effect::Defer {
                job_id,
                dispatch_seq,
                run_in,
                reason: None,
            },
        ));
    }
    if !loaded.config_active {
        let reason = "connector config deactivated or deleted".to_owned();
        return Ok((
            Handled::Cancelled,
            Effect::Cancel {
                job_id,
                dispatch_seq,
                reason,
            },
        ));
    }
    let attempt_number = loaded.attempt_number + 1;
    let started_at = deps.clock.now();
    let (result, requests) = match deps.prepare(&loaded.config).await {
        Err(NoContext::SecretsUnavailable(why)) => {
            tracing::warn!(%why, %job_id, "connector credentials unavailable; deferring without counting an attempt");
            let effect = Effect::Defer {
                job_id,
                dispatch_seq,
                run_in: deps.secret_retry,
                reason: Some(why),
            };
            return Ok((Handled::Deferred, effect));
        }
        Err(NoContext::Broken(e)) => (Err(e), 0),
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
        let effect = Effect::Defer {
            job_id,
            dispatch_seq,
            run_in: spread(*wait),
            reason: Some(format!(
                "waiting for this config's rate limit ({requests} request(s) sent)"
            )),
        };
        return Ok((Handled::Deferred, effect));
    }
    let finished_at = deps.clock.now().max(started_at);
    let failure = result.as_ref().err().map(ConnectorError::as_failure);
    let decision = decide_sync(attempt_number, failure.as_ref(), finished_at);
    let next_run_in = decision
        .next_retry_at
        .map(|at| real_wait(at - finished_at, deps.time_scale));
    let (entity_type, records, skipped) = match &result {
        Ok(r) => (r.entity_type.clone(), r.records, r.skipped.clone()),
        Err(_) => (entity_of(&loaded.event.event_type).to_owned(), 0, None),
    };
    if let Some(f) = &failure {
        tracing::info!(%job_id, attempt_number, reason = %f.reason, permanent = f.permanent, "connector sync failed");
    }
    let handled = Handled::Attempted {
        status: decision.status,
    };
    let record = SyncRecord {
        job: loaded,
        attempt_number,
        started_at,
        finished_at,
        entity_type,
        records,
        requests,
        skipped,
        failure,
        decision,
        next_run_in,
        worker: deps.worker.clone(),
    };
    Ok((handled, Effect::Synced(Box::new(record))))
}

/// Handle one poll job whose config was loaded as `loaded`.
pub async fn handle_poll(
    deps: &ConnectorDeps,
    job: &PollConnector,
    loaded: Option<PollToRun>,
) -> anyhow::Result<(Handled, Effect)> {
    let Some(loaded) = loaded else {
        return Ok((Handled::Stale, Effect::None));
    };
    if loaded.poll_seq != job.poll_seq || !loaded.active {
        return Ok((Handled::Stale, Effect::None));
    }
    let mut now = deps.clock.now();
    if let Some(due) = loaded.next_poll_at
        && due > now
    {
        let run_in = real_wait(due - now, deps.time_scale);
        if due - DUE_TOLERANCE > now {
            return Ok((
                Handled::NotYetDue,
                Effect::PollDeferred {
                    config_id: job.config_id,
                    poll_seq: job.poll_seq,
                    run_in,
                },
            ));
        }
        // The queue keeps whole seconds, so a poll can be claimed up to a second early: wait for its time, so polls
        // are never closer than the interval.
        tokio::time::sleep(run_in).await;
        now = deps.clock.now().max(due);
    }
    let started_at = now;
    let (result, requests) = match deps.prepare(&loaded.config).await {
        Err(NoContext::SecretsUnavailable(why)) => {
            tracing::warn!(%why, "connector credentials unavailable; poll deferred");
            let effect = Effect::PollDeferred {
                config_id: job.config_id,
                poll_seq: job.poll_seq,
                run_in: deps.secret_retry,
            };
            return Ok((Handled::Deferred, effect));
        }
        Err(NoContext::Broken(e)) => (Err(e), 0),
        Ok((adapter, credentials, channel)) => {
            let ctx = ConnectorContext {
                config: &loaded.config,
                credentials: &credentials,
                channel: &channel,
                now,
            };
            let result = adapter.poll(&ctx, loaded.cursor.as_deref()).await;
            (result, channel.calls())
        }
    };
    if let Err(ConnectorError::RateLimited(wait)) = &result {
        let effect = Effect::PollDeferred {
            config_id: job.config_id,
            poll_seq: job.poll_seq,
            run_in: spread(*wait),
        };
        return Ok((Handled::Deferred, effect));
    }
    let finished_at = deps.clock.now().max(started_at);
    let interval =
        chrono::Duration::from_std(loaded.interval).unwrap_or(chrono::Duration::minutes(5));
    // Polls start at least one interval apart (a late poll moves the schedule; there is never a catch-up burst).
    let next_poll_at = (started_at + interval).max(finished_at);
    let (entity_type, records, cursor, failure) = match result {
        Ok(r) => (r.entity_type, r.records, r.cursor, None),
        Err(e) => {
            tracing::warn!(config_id = %job.config_id, error = %e, "poll failed; the next one is scheduled");
            ("order".to_owned(), Vec::new(), None, Some(e.to_string()))
        }
    };
    let handled = Handled::Polled {
        published: records.len(),
        failed: failure.is_some(),
    };
    let record = PollRecord {
        config: loaded.config,
        poll_seq: loaded.poll_seq,
        started_at,
        finished_at,
        entity_type,
        records,
        cursor,
        failure,
        requests,
        next_run_in: real_wait(next_poll_at - finished_at, deps.time_scale),
        next_poll_at,
        worker: deps.worker.clone(),
    };
    Ok((handled, Effect::Polled(Box::new(record))))
}

#[cfg(test)]
mod tests {
    //! The handlers' decisions with every port faked: no network, no database, a manual clock.

    use std::sync::Mutex;

    use chrono::TimeZone;
    use serde_json::json;
    use workflows::ratelimit::{RateLimit, Reservation};

    use super::*;
    use crate::clock::ManualClock;
    use connectors::amazon::Amazon;
    use connectors::{ChannelRequest, ChannelResponse, CredentialField};

    /// Answers token requests with a token and every other request with the next scripted status (200 when none).
    struct ScriptedHttp {
        statuses: Mutex<Vec<u16>>,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl ChannelHttp for ScriptedHttp {
        async fn send(&self, request: &ChannelRequest) -> Result<ChannelResponse, String> {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.url.clone());
            if request.url.ends_with("/token") {
                let body = json!({"access_token": "Atza|t", "expires_in": 3600})
                    .to_string()
                    .into_bytes();
                return Ok(ChannelResponse {
                    status: 200,
                    retry_after: None,
                    body,
                });
            }
            let status = self
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or(200);
            let body = json!({"status": "ACCEPTED"}).to_string().into_bytes();
            Ok(ChannelResponse {
                status,
                retry_after: None,
                body,
            })
        }
    }

    struct Gate(Option<Duration>);

    #[async_trait]
    impl RateGate for Gate {
        async fn reserve(&self, _: Uuid, _: RateLimit, _: Duration) -> Result<Reservation, String> {
            Ok(match self.0 {
                None => Reservation::Granted {
                    wait: chrono::Duration::zero(),
                    tat: Utc::now(),
                },
                Some(wait) => Reservation::Denied {
                    wait: chrono::Duration::from_std(wait).unwrap_or_default(),
                },
            })
        }
        async fn pause(&self, _: Uuid, _: RateLimit, _: Duration) -> Result<(), String> {
            Ok(())
        }
    }

    struct Secrets(Result<(), ()>);

    #[async_trait]
    impl ConnectorSecrets for Secrets {
        async fn credentials(&self, _: Uuid) -> Result<Credentials, SecretError> {
            self.0
                .map_err(|()| SecretError::Unavailable("sealed".into()))?;
            let mut c = Credentials::default();
            for f in CredentialField::ALL {
                c.0.insert(f, "x".into());
            }
            Ok(c)
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn deps(
        statuses: Vec<u16>,
        gate: Option<Duration>,
        secrets: Result<(), ()>,
    ) -> (ConnectorDeps, Arc<ScriptedHttp>) {
        let http = Arc::new(ScriptedHttp {
            statuses: Mutex::new(statuses),
            seen: Mutex::default(),
        });
        let deps = ConnectorDeps {
            registry: Arc::new(Registry::new().with(Amazon::default())),
            secrets: Arc::new(Secrets(secrets)),
            http: http.clone(),
            gate: Arc::new(Gate(gate)),
            clock: Arc::new(ManualClock::new(t0())),
            time_scale: 1.0,
            secret_retry: Duration::from_secs(30),
            max_inline_wait: Duration::from_secs(5),
            worker: "w".into(),
        };
        (deps, http)
    }

    fn config() -> ConnectorConfig {
        ConnectorConfig {
            config_id: Uuid::nil(),
            store_id: "s".into(),
            connector_type: "amazon".into(),
            settings: json!({"sellerId": "S", "marketplaceId": "M"}),
        }
    }

    fn job(attempts: u32) -> ConnectorJobToRun {
        ConnectorJobToRun {
            job_id: Uuid::nil(),
            config: config(),
            config_active: true,
            status: if attempts == 0 {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Failed
            },
            attempt_number: attempts,
            next_retry_at: None,
            dispatch_seq: 1,
            event: ConnectorEvent {
                event_id: Uuid::nil(),
                event_type: "inventory.updated".into(),
                data: json!({"sku": "A", "quantity": 1}),
            },
        }
    }

    const JOB: SyncConnector = SyncConnector {
        job_id: Uuid::nil(),
        dispatch_seq: 1,
    };

    async fn sync(deps: &ConnectorDeps, loaded: ConnectorJobToRun) -> (Handled, Effect) {
        handle_sync(deps, &JOB, Some(loaded))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn success_and_failures_follow_the_schedule() {
        let (d, http) = deps(vec![], None, Ok(()));
        let (handled, effect) = sync(&d, job(0)).await;
        assert_eq!(
            handled,
            Handled::Attempted {
                status: DeliveryStatus::Delivered
            }
        );
        let Effect::Synced(r) = effect else {
            panic!("not synced")
        };
        assert_eq!(
            (r.records, r.requests, r.entity_type.as_str()),
            (1, 2, "inventory")
        );
        assert_eq!(http.seen.lock().map(|s| s.len()).unwrap_or(0), 2);

        let (d, _) = deps(vec![503], None, Ok(()));
        let (_, effect) = sync(&d, job(1)).await;
        let Effect::Synced(r) = effect else {
            panic!("not synced")
        };
        assert_eq!(r.decision.status, DeliveryStatus::Failed);
        assert_eq!(
            r.decision.next_retry_at,
            Some(t0() + chrono::Duration::minutes(5)),
            "attempt 2 failed: +5 min"
        );
        assert_eq!(r.next_run_in, Some(Duration::from_secs(300)));

        let (d, _) = deps(vec![403], None, Ok(()));
        let (handled, _) = sync(&d, job(0)).await;
        assert_eq!(
            handled,
            Handled::Attempted {
                status: DeliveryStatus::Failed
            },
            "SP-API's 403 for a stale token is retried"
        );

        let (d, _) = deps(vec![400], None, Ok(()));
        let (handled, _) = sync(&d, job(0)).await;
        assert_eq!(
            handled,
            Handled::Attempted {
                status: DeliveryStatus::DeadLettered
            },
            "a refusal is not retried"
        );
    }

    #[tokio::test]
    async fn waiting_on_secrets_or_the_rate_limit_counts_no_attempt_and_stale_jobs_do_nothing() {
        let (d, http) = deps(vec![], None, Err(()));
        let (handled, effect) = sync(&d, job(2)).await;
        assert_eq!(handled, Handled::Deferred);
        assert!(
            matches!(effect, Effect::Defer { run_in, .. } if run_in == Duration::from_secs(30))
        );
        assert!(http.seen.lock().map(|s| s.is_empty()).unwrap_or(false));

        let (d, _) = deps(vec![], Some(Duration::from_secs(60)), Ok(()));
        let (handled, effect) = sync(&d, job(2)).await;
        assert_eq!(handled, Handled::Deferred);
        assert!(
            matches!(effect, Effect::Defer { run_in, .. } if run_in >= Duration::from_secs(60) && run_in <= Duration::from_secs(120))
        );

        let (d, _) = deps(vec![], None, Ok(()));
        let stale = SyncConnector {
            job_id: Uuid::nil(),
            dispatch_seq: 2,
        };
        assert_eq!(
            handle_sync(&d, &stale, Some(job(0)))
                .await
                .map(|r| r.0)
                .ok(),
            Some(Handled::Stale)
        );
        let inactive = ConnectorJobToRun {
            config_active: false,
            ..job(1)
        };
        assert!(matches!(
            sync(&d, inactive).await,
            (Handled::Cancelled, Effect::Cancel { .. })
        ));
        let early = ConnectorJobToRun {
            next_retry_at: Some(t0() + chrono::Duration::minutes(1)),
            ..job(1)
        };
        assert!(matches!(
            sync(&d, early).await,
            (Handled::NotYetDue, Effect::Defer { reason: None, .. })
        ));
    }

    #[tokio::test]
    async fn a_poll_runs_when_due_and_schedules_the_next_one_an_interval_after_it_started() {
        let (d, _) = deps(vec![], None, Ok(()));
        let poll = |next_poll_at, poll_seq| PollToRun {
            config: config(),
            active: true,
            poll_seq,
            cursor: Some("2026-11-20T00:00:00Z".into()),
            interval: Duration::from_secs(600),
            next_poll_at,
        };
        let job = PollConnector {
            config_id: Uuid::nil(),
            poll_seq: 3,
        };
        let early = handle_poll(
            &d,
            &job,
            Some(poll(Some(t0() + chrono::Duration::minutes(2)), 3)),
        )
        .await
        .map(|r| r.0)
        .ok();
        assert_eq!(early, Some(Handled::NotYetDue));
        let superseded = handle_poll(&d, &job, Some(poll(Some(t0()), 4)))
            .await
            .map(|r| r.0)
            .ok();
        assert_eq!(superseded, Some(Handled::Stale));
        let (handled, effect) = handle_poll(&d, &job, Some(poll(Some(t0()), 3)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            handled,
            Handled::Polled {
                published: 0,
                failed: false
            }
        );
        let Effect::Polled(r) = effect else {
            panic!("not polled")
        };
        assert_eq!(r.next_poll_at, t0() + chrono::Duration::minutes(10));
        assert_eq!(
            r.cursor.as_deref(),
            Some("2026-11-20T00:00:00Z"),
            "no orders: the cursor stays"
        );
    }
}
