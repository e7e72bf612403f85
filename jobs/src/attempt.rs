//! The one attempt engine: what every outbound job (a webhook delivery, a connector sync) does when it runs.
//!
//! [`run`] takes a job through the shared pre-flight — stale → early → cancelled (the pure
//! [`workflows::attempt::preflight`]) → prepare (secrets) → defer when they are unavailable — then lets the kind send,
//! and decides the row's next state with the shared state machine ([`workflows::attempt::decide`]). It returns
//! what happened ([`Handled`]) and what to write ([`Effect`]) as values; the worker's writer applies the effects of a
//! whole batch with set-based statements.
//!
//! # Adding a kind of outbound job
//! Implement [`OutboundKind`] in one module: the row as loaded ([`OutboundKind::Loaded`], which exposes its
//! [`AttemptState`] and whether its owner is active), how to prepare an attempt (read its secrets), how to send it
//! (mapping the answer into [`Outcome`]), and the kind-specific part of its record ([`OutboundKind::Extras`]). The
//! `jobs` adds the matching table description for the writer (`queue::attempts::AttemptTable`: its table, its attempt
//! log, the event it publishes) and a `Job` variant. Nothing else is copied.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;
use workflows::attempt::{AttemptState, Outcome, OutcomeDecision, Preflight, decide, preflight};

use crate::Job;
use crate::clock::{Clock, real_wait};

mod handled;
pub use handled::{DeferCause, Handled};

/// The record of one attempt: the shared part the writer applies to the row, and the kind's `extras`.
#[derive(Debug, Clone)]
pub struct AttemptRecord<L, E> {
    /// The row as loaded before the attempt.
    pub loaded: L,
    /// The row's state as loaded (its `dispatch_seq` guards the update).
    pub state: AttemptState,
    /// 1-based number of this attempt in the schedule.
    pub attempt_number: u32,
    /// When the attempt started (service clock).
    pub started_at: DateTime<Utc>,
    /// When the answer (or the failure) came (service clock, never before `started_at`).
    pub finished_at: DateTime<Utc>,
    /// The shared outcome the decision was made from.
    pub outcome: Outcome,
    /// What the row's `last_error` becomes (the failure, or why there was nothing to do).
    pub last_error: Option<String>,
    /// The state the row moves to.
    pub decision: OutcomeDecision,
    /// Real time until the next attempt's job becomes due (scaled by `time_scale`), when there is one.
    pub next_run_in: Option<Duration>,
    /// This worker's name, for the attempt log.
    pub worker: String,
    /// The remote side timed out or answered later than [`Pacing::slow_after`] (its lane's circuit breaker counts it).
    pub slow: bool,
    /// The kind-specific part (response body, sync-log fields).
    pub extras: E,
}

/// The state change an outbound job asks for; `I` is the kind's typed row id, `R` its record.
#[derive(Debug, Clone)]
pub enum Effect<I, R> {
    /// Nothing to write.
    None,
    /// Record an attempt and move the row on (next job, published event).
    Record(Box<R>),
    /// Stop retrying the row, recording `reason` as its last error.
    Cancel {
        /// The row.
        id: I,
        /// The attempt that found its owner inactive (a newer one wins).
        dispatch_seq: i32,
        /// Why retries stopped.
        reason: String,
    },
    /// Queue the same attempt again after `run_in` (real time), without counting it.
    Defer {
        /// The row.
        id: I,
        /// Its owner (the lane its next job is claimed in).
        owner: Uuid,
        /// The attempt deferred; its successor is queued as `dispatch_seq + 1`.
        dispatch_seq: i32,
        /// Real time until the attempt is due again.
        run_in: Duration,
        /// Becomes the last error (prefixed "deferred, no attempt counted"); `None` keeps the previous one.
        reason: Option<String>,
    },
}

/// The effect type of a kind.
pub type KindEffect<K> = Effect<
    <K as OutboundKind>::Id,
    AttemptRecord<<K as OutboundKind>::Loaded, <K as OutboundKind>::Extras>,
>;

/// Why an attempt could not be prepared.
#[derive(Debug)]
pub enum Unprepared {
    /// The secret store is unavailable: defer without counting an attempt.
    SecretsUnavailable(String),
    /// Our own data is broken (e.g. a subscription without a signing secret): the job fails on our side.
    Fatal(anyhow::Error),
}

/// What a kind's send came to.
#[derive(Debug)]
pub enum Sent<E> {
    /// The attempt was made.
    Made {
        /// The shared outcome (the kind's classification of the answer).
        outcome: Outcome,
        /// What the row's `last_error` becomes.
        last_error: Option<String>,
        /// The kind-specific part of the record.
        extras: E,
    },
    /// The attempt could not go out now (a rate limit): queue it again after `run_in` without counting it.
    Deferred {
        /// Real time to wait.
        run_in: Duration,
        /// Becomes the row's last error.
        reason: String,
    },
}

/// Time and naming the engine needs, shared by every kind's dependencies.
#[derive(Clone)]
pub struct Pacing {
    /// The service clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
    /// Multiplies real waits between attempts (see `ScaledClock`).
    pub time_scale: f64,
    /// How long to wait before trying again when the secret store is unavailable.
    pub secret_retry: Duration,
    /// This worker's name, for the attempt log.
    pub worker: String,
    /// An attempt answered later than this (or not at all) counts as slow for its lane's circuit breaker.
    pub slow_after: Duration,
}

#[cfg(test)]
impl Pacing {
    /// A manual clock at `at`, real time, 30 s secret retry, a 5 s slow threshold, worker `w`: the unit tests' pacing.
    pub(crate) fn manual(at: DateTime<Utc>) -> Self {
        Self {
            clock: Arc::new(crate::clock::ManualClock::new(at)),
            time_scale: 1.0,
            secret_retry: Duration::from_secs(30),
            worker: "w".into(),
            slow_after: Duration::from_secs(5),
        }
    }
}

/// One kind of outbound job: its specifics, everything else is the engine's (see the module documentation).
#[async_trait]
pub trait OutboundKind: Send + Sync {
    /// The typed id of a row of this kind (`DeliveryId`, `ConnectorJobId`).
    type Id: Copy + Debug + PartialEq + Send + Sync + Into<Uuid> + From<Uuid> + std::fmt::Display;
    /// The row as the worker loads it for an attempt.
    type Loaded: Clone + Debug + Send + Sync;
    /// What preparing an attempt produced (a signing secret; an adapter with credentials and a channel).
    type Prepared: Send;
    /// The kind-specific part of an attempt's record.
    type Extras: Clone + Debug + Send + Sync;

    /// The tracing span's name and the kind's name in logs.
    const NAME: &'static str;
    /// The reason recorded when the row's owner is inactive.
    const INACTIVE_REASON: &'static str;

    /// The row's id.
    fn id(loaded: &Self::Loaded) -> Self::Id;
    /// The row's state.
    fn state(loaded: &Self::Loaded) -> &AttemptState;
    /// Whether the row's owner (subscription, connector) is active and not deleted.
    fn owner_active(loaded: &Self::Loaded) -> bool;
    /// The row's owner (subscription, connector): the lane its jobs are claimed in.
    fn owner(loaded: &Self::Loaded) -> Uuid;
    /// The queue payload of attempt `dispatch_seq` of row `id` of `owner`.
    fn job(id: Self::Id, owner: Uuid, dispatch_seq: i32) -> Job;
    /// Time and naming for the engine.
    fn pacing(&self) -> &Pacing;
    /// Read what the attempt needs from the outside (secrets), before anything is sent.
    async fn prepare(&self, loaded: &Self::Loaded) -> Result<Self::Prepared, Unprepared>;
    /// How long the remote side took to answer the attempt recorded with `extras`; `None` when it never answered
    /// in time (a timeout). Kinds that do not measure it are never slow.
    fn answer_time(extras: &Self::Extras) -> Option<Duration> {
        let _ = extras;
        Some(Duration::ZERO)
    }
    /// The trace context stored with the row at the event's fan-out (see [`crate::trace`]): its attempts continue
    /// the event's trace. Kinds that store none start a trace of their own.
    fn trace_context(loaded: &Self::Loaded) -> Option<&str> {
        let _ = loaded;
        None
    }
    /// Make the attempt. Never an error: the remote side failing is an outcome.
    async fn send(
        &self,
        loaded: &Self::Loaded,
        prepared: Self::Prepared,
        started_at: DateTime<Utc>,
    ) -> Sent<Self::Extras>;
}

/// Handle a job queued as attempt `queued_seq` of the row loaded as `loaded` (`None`: the row is unknown).
/// `Err` means our own infrastructure failed; the job runs again.
pub async fn run<K: OutboundKind>(
    kind: &K,
    queued_seq: i32,
    loaded: Option<K::Loaded>,
) -> anyhow::Result<(Handled, KindEffect<K>)> {
    let Some(loaded) = loaded else {
        return Ok((Handled::Stale, Effect::None));
    };
    let id = K::id(&loaded);
    let span = tracing::info_span!(
        "attempt",
        kind = K::NAME,
        %id,
        dispatch_seq = queued_seq,
        attempt = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    crate::trace::continue_from(&span, K::trace_context(&loaded));
    let handled = attempt(kind, queued_seq, loaded)
        .instrument(span.clone())
        .await;
    if let Ok((handled, _)) = &handled {
        span.record("outcome", handled.outcome());
    }
    handled
}

/// The pre-flight, then the attempt when it says go.
async fn attempt<K: OutboundKind>(
    kind: &K,
    queued_seq: i32,
    loaded: K::Loaded,
) -> anyhow::Result<(Handled, KindEffect<K>)> {
    let state = *K::state(&loaded);
    let pacing = kind.pacing();
    let (id, owner, dispatch_seq) = (K::id(&loaded), K::owner(&loaded), state.dispatch_seq);
    let now = pacing.clock.now();
    let attempt_number = match preflight(&state, queued_seq, K::owner_active(&loaded), now) {
        Preflight::Go { attempt_number } => attempt_number,
        other => {
            return Ok(not_attempted::<K>(
                other,
                (id, owner, dispatch_seq),
                pacing.time_scale,
            ));
        }
    };
    let prepared = match kind.prepare(&loaded).await {
        Ok(prepared) => prepared,
        Err(Unprepared::SecretsUnavailable(why)) => {
            tracing::warn!(%why, "secrets unavailable; deferring without counting an attempt");
            let run_in = pacing.secret_retry;
            let effect = Effect::Defer {
                id,
                owner,
                dispatch_seq,
                run_in,
                reason: Some(why),
            };
            return Ok((Handled::Deferred(DeferCause::SecretsUnavailable), effect));
        }
        Err(Unprepared::Fatal(e)) => return Err(e),
    };
    tracing::Span::current().record("attempt", attempt_number);
    let started_at = pacing.clock.now();
    match kind.send(&loaded, prepared, started_at).await {
        Sent::Made {
            outcome,
            last_error,
            extras,
        } => {
            let made = Made {
                outcome,
                last_error,
                extras,
                attempt_number,
                started_at,
            };
            Ok(recorded::<K>(pacing, loaded, state, made))
        }
        Sent::Deferred { run_in, reason } => {
            let effect = Effect::Defer {
                id,
                owner,
                dispatch_seq,
                run_in,
                reason: Some(reason),
            };
            Ok((Handled::Deferred(DeferCause::RateLimited), effect))
        }
    }
}

/// What the pre-flight decided when it did not say go.
fn not_attempted<K: OutboundKind>(
    decided: Preflight,
    (id, owner, dispatch_seq): (K::Id, Uuid, i32),
    time_scale: f64,
) -> (Handled, KindEffect<K>) {
    match decided {
        Preflight::NotYetDue(wait) => {
            let run_in = real_wait(wait, time_scale);
            let effect = Effect::Defer {
                id,
                owner,
                dispatch_seq,
                run_in,
                reason: None,
            };
            (Handled::NotYetDue, effect)
        }
        Preflight::Cancel => {
            let reason = K::INACTIVE_REASON.to_owned();
            (
                Handled::Cancelled,
                Effect::Cancel {
                    id,
                    dispatch_seq,
                    reason,
                },
            )
        }
        Preflight::Stale | Preflight::Go { .. } => (Handled::Stale, Effect::None),
    }
}

/// An attempt that was made, before its decision.
struct Made<E> {
    outcome: Outcome,
    last_error: Option<String>,
    extras: E,
    attempt_number: u32,
    started_at: DateTime<Utc>,
}

/// Decide the row's next state after an attempt was made, and record it.
fn recorded<K: OutboundKind>(
    pacing: &Pacing,
    loaded: K::Loaded,
    state: AttemptState,
    made: Made<K::Extras>,
) -> (Handled, KindEffect<K>) {
    let finished_at = pacing.clock.now().max(made.started_at);
    let decision = decide(made.attempt_number, &made.outcome, finished_at);
    let next_run_in = decision
        .next_retry_at
        .map(|at| real_wait(at - finished_at, pacing.time_scale));
    // A failed attempt is worth an operator's eye (and carries its trace id); a delivered one is routine.
    if decision.status == workflows::attempt::AttemptStatus::Delivered {
        tracing::debug!(status = decision.status.as_str(), "attempt made");
    } else {
        let next_retry_at = decision.next_retry_at.map(|at| at.to_rfc3339());
        tracing::info!(
            status = decision.status.as_str(),
            ?next_retry_at,
            "attempt failed"
        );
    }
    let handled = Handled::Attempted {
        status: decision.status,
    };
    let record = AttemptRecord {
        loaded,
        state,
        attempt_number: made.attempt_number,
        started_at: made.started_at,
        finished_at,
        outcome: made.outcome,
        last_error: made.last_error,
        decision,
        next_run_in,
        worker: pacing.worker.clone(),
        slow: K::answer_time(&made.extras).is_none_or(|t| t >= pacing.slow_after),
        extras: made.extras,
    };
    (handled, Effect::Record(Box::new(record)))
}
