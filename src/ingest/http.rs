//! `POST /events` (and test events) in shared transactions: concurrent requests are written together, a few
//! writers at a time, each writing whatever waits when it is free (group commit). One request alone is written at
//! once, in a transaction of its own; under load, each transaction carries many events, and the round trips,
//! the job insert and the WAL flush of a commit are paid once for all of them. Nothing waits for a batch to fill.
//!
//! A batch Postgres refuses (an event's data, or a conflict) is rolled back and its requests are written again one
//! by one, so each gets its own answer: one bad event never fails another's request. A commit whose answer was
//! lost fails every request of the batch with the same error: they may or may not be stored, and a client retrying
//! with the same event id is told so (a duplicate) rather than having its event fanned out twice.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use workflows::EventEnvelope;
use workflows::ids::SubscriptionId;

use super::batch::commit_outcome_unknown;
use super::{Ingestor, event_span};
use crate::db::events::{self, EventSource, Ingested, NewJobs};
use jobs::queue::announce;

/// One request waiting to be written.
struct Request {
    event: EventEnvelope,
    source: EventSource,
    only_subscription: Option<SubscriptionId>,
    /// The event's span, a child of the request's.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Ingested, sqlx::Error>>,
}

/// The writers of `POST /events`. Cheap to clone; the writers stop when the last clone is dropped.
///
/// Each store's events go to one writer (by a hash of its id), so two writers never queue jobs for the same lane
/// (a subscription belongs to one store) at once: each would otherwise find the lane locked by the other's
/// transaction and leave its jobs to a claim instead of handing them to the worker (`jobs::queue::push`).
#[derive(Clone)]
pub struct HttpIngest {
    queues: Arc<[mpsc::Sender<Request>]>,
}

impl HttpIngest {
    /// Start `writers` writers (at least one) for `ingestor`, each writing up to `batch` events per transaction.
    pub fn start(ingestor: Ingestor, writers: usize, batch: usize) -> Self {
        let queues = (0..writers.max(1))
            .map(|_| {
                let (queue, waiting) = mpsc::channel(batch.max(1));
                tokio::spawn(write_until_closed(ingestor.clone(), waiting, batch.max(1)));
                queue
            })
            .collect();
        Self { queues }
    }

    /// The writer of `store`'s events.
    fn queue_of(&self, store: &str) -> &mpsc::Sender<Request> {
        let mut hasher = std::hash::DefaultHasher::new();
        store.hash(&mut hasher);
        let n = u64::try_from(self.queues.len()).unwrap_or(1);
        &self.queues[usize::try_from(hasher.finish() % n).unwrap_or_default()]
    }

    /// Ingest one event; `only_subscription` restricts fan-out (the test endpoint). A data error (SQLSTATE class
    /// 22/23…) comes back as such, for the API to answer with a problem, not a 500.
    pub async fn ingest_one(
        &self,
        event: EventEnvelope,
        source: EventSource,
        only_subscription: Option<SubscriptionId>,
    ) -> Result<Ingested, sqlx::Error> {
        let kind = match source {
            EventSource::Test => "test",
            _ => "http",
        };
        let (reply, answer) = oneshot::channel();
        let queue = self.queue_of(event.store_id.as_str()).clone();
        let request = Request {
            span: event_span(&event, kind),
            event,
            source,
            only_subscription,
            reply,
        };
        queue.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Requests waiting for a writer.
    pub fn waiting(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.max_capacity() - q.capacity())
            .sum()
    }
}

/// The error of each request of a batch whose commit's answer was lost: the database was unreachable, as it was
/// for a request written alone (a 503 that tells the client to retry; the same event id is then a duplicate if it
/// was written).
fn lost_commit(text: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        format!("the commit's answer was lost: {text}"),
    ))
}

/// The error of a request whose writer stopped (the service is shutting down).
fn stopped() -> sqlx::Error {
    sqlx::Error::PoolClosed
}

/// Take the first waiting request, then whatever else waits (up to `batch`), write them, repeat.
async fn write_until_closed(
    ingestor: Ingestor,
    mut waiting: mpsc::Receiver<Request>,
    batch: usize,
) {
    let mut requests = Vec::with_capacity(batch);
    while waiting.recv_many(&mut requests, batch).await > 0 {
        ingestor.write_requests(std::mem::take(&mut requests)).await;
    }
}

impl Ingestor {
    /// Write `requests` in one transaction and answer each; alone, or again one by one if Postgres refused it.
    async fn write_requests(&self, requests: Vec<Request>) {
        let result = self.write_together(&requests).await;
        let answers: Vec<Result<Ingested, sqlx::Error>> = match result {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            Err(Together::Unknown(e)) => {
                let text = e.to_string();
                tracing::warn!(error = %text, events = requests.len(), "an ingest commit's answer was lost");
                requests.iter().map(|_| Err(lost_commit(&text))).collect()
            }
            Err(Together::RolledBack(e)) if requests.len() == 1 => vec![Err(e)],
            Err(Together::RolledBack(e)) => {
                tracing::debug!(error = %e, events = requests.len(), "a shared ingest transaction failed; writing its events one by one");
                let mut answers = Vec::with_capacity(requests.len());
                for r in &requests {
                    answers.push(match self.write_together(std::slice::from_ref(r)).await {
                        Ok(mut one) => Ok(one.remove(0)),
                        Err(Together::RolledBack(e) | Together::Unknown(e)) => Err(e),
                    });
                }
                answers
            }
        };
        for (request, answer) in requests.into_iter().zip(answers) {
            if let Ok(ingested) = &answer {
                self.count(ingested);
            }
            // The client may have gone away: its event is written all the same.
            let _ = request.reply.send(answer);
        }
    }

    /// One transaction for `requests`: each event's fan-out, then every job they queued in one insert.
    async fn write_together(&self, requests: &[Request]) -> Result<Vec<Ingested>, Together> {
        // Its jobs are announced after the commit, by one NOTIFY outside it (jobs::queue::announce).
        let mut tx = announce::begin_quiet(&self.pool)
            .await
            .map_err(Together::RolledBack)?;
        let mut answers = Vec::with_capacity(requests.len());
        let mut jobs = NewJobs::default();
        for r in requests {
            let (ingested, queued) = events::fan_out(
                &mut tx,
                &r.event,
                &r.source,
                r.only_subscription,
                self.sendable(),
            )
            .instrument(r.span.clone())
            .await
            .map_err(Together::RolledBack)?;
            jobs.append(queued);
            answers.push(ingested);
        }
        let queued = self
            .queue(&mut tx, jobs)
            .await
            .map_err(Together::RolledBack)?;
        tx.commit().await.map_err(|e| {
            if commit_outcome_unknown(&e) {
                Together::Unknown(e)
            } else {
                Together::RolledBack(e)
            }
        })?;
        self.committed(queued);
        Ok(answers)
    }
}

/// Why a shared transaction failed.
enum Together {
    /// Nothing was written (Postgres refused something, or the connection failed before the commit).
    RolledBack(sqlx::Error),
    /// The commit was sent and its answer lost: written or not, nobody knows.
    Unknown(sqlx::Error),
}
