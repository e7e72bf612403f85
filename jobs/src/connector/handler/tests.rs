//! The handlers' decisions with every port faked: no network, no database, a manual clock.

use std::sync::Mutex;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;
use workflows::DeliveryStatus;
use workflows::attempt::AttemptState;
use workflows::ids::{ConnectorId, ConnectorJobId};

use super::*;
use crate::attempt::{Effect, Pacing};
use crate::fakes::Gate;
use crate::ports::SecretError;
use connectors::{
    ChannelHttp, ChannelRequest, ChannelResponse, ConnectorConfig, ConnectorEvent, CredentialField,
    Credentials, Registry,
};

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

struct Secrets(Result<(), ()>);

#[async_trait]
impl ConnectorSecrets for Secrets {
    async fn credentials(&self, _: ConnectorId) -> Result<Credentials, SecretError> {
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
        registry: Arc::new(Registry::new().with(connectors::amazon::Amazon::default())),
        secrets: Arc::new(Secrets(secrets)),
        http: http.clone(),
        gate: Arc::new(Gate(gate)),
        pacing: Pacing::manual(t0()),
        max_inline_wait: Duration::from_secs(5),
    };
    (deps, http)
}

fn config() -> ConnectorConfig {
    ConnectorConfig {
        config_id: ConnectorId(Uuid::nil()),
        store_id: "s".into(),
        connector_type: "amazon".into(),
        settings: json!({"sellerId": "S", "marketplaceId": "M"}),
    }
}

fn job(attempts: u32) -> ConnectorJobToRun {
    ConnectorJobToRun {
        job_id: ConnectorJobId(Uuid::nil()),
        config: config(),
        config_active: true,
        state: AttemptState {
            status: if attempts == 0 {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Failed
            },
            attempt_number: attempts,
            next_retry_at: None,
            dispatch_seq: 1,
        },
        event: ConnectorEvent {
            event_id: workflows::ids::EventId(Uuid::nil()),
            event_type: "inventory.updated".into(),
            data: json!({"sku": "A", "quantity": 1}),
        },
        trace_context: None,
    }
}

const JOB: SyncConnector = SyncConnector {
    job_id: ConnectorJobId(Uuid::nil()),
    dispatch_seq: 1,
    config_id: ConnectorId(Uuid::nil()),
};

async fn sync(deps: &ConnectorDeps, loaded: ConnectorJobToRun) -> (Handled, SyncEffect) {
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
    let Effect::Record(r) = effect else {
        panic!("not synced")
    };
    assert_eq!(
        (
            r.extras.records,
            r.extras.requests,
            r.extras.entity_type.as_str()
        ),
        (1, 2, "inventory")
    );
    assert_eq!(http.seen.lock().map(|s| s.len()).unwrap_or(0), 2);

    let (d, _) = deps(vec![503], None, Ok(()));
    let (_, effect) = sync(&d, job(1)).await;
    let Effect::Record(r) = effect else {
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
    assert_eq!(handled, Handled::Deferred(DeferCause::SecretsUnavailable));
    assert!(matches!(effect, Effect::Defer { run_in, .. } if run_in == Duration::from_secs(30)));
    assert!(http.seen.lock().map(|s| s.is_empty()).unwrap_or(false));

    let (d, _) = deps(vec![], Some(Duration::from_secs(60)), Ok(()));
    let (handled, effect) = sync(&d, job(2)).await;
    assert_eq!(handled, Handled::Deferred(DeferCause::RateLimited));
    assert!(
        matches!(effect, Effect::Defer { run_in, .. } if run_in >= Duration::from_secs(60) && run_in <= Duration::from_secs(120))
    );

    let (d, _) = deps(vec![], None, Ok(()));
    let stale = SyncConnector {
        job_id: ConnectorJobId(Uuid::nil()),
        dispatch_seq: 2,
        config_id: ConnectorId(Uuid::nil()),
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
    let mut early = job(1);
    early.state.next_retry_at = Some(t0() + chrono::Duration::minutes(1));
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
        config_id: ConnectorId(Uuid::nil()),
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
    let PollEffect::Polled(r) = effect else {
        panic!("not polled")
    };
    assert_eq!(r.next_poll_at, t0() + chrono::Duration::minutes(10));
    assert_eq!(
        r.cursor.as_deref(),
        Some("2026-11-20T00:00:00Z"),
        "no orders: the cursor stays"
    );
}
