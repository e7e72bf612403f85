//! Writing a Kafka batch: every message in ONE transaction together with the partitions' next offsets.
//!
//! When Postgres refuses a message's data (see `db::errors::fault`), the batch is rolled back and written again
//! with a savepoint around each message: the refused ones are rolled back to their savepoint and quarantined with
//! the database's reason, the rest commit with the offsets. We replay with savepoints rather than bisect because
//! it finds every poison message in one extra transaction (bisection needs about 2·k·log n for k of them, each
//! re-sending the good half), keeps one transaction per batch (so offsets still move only with their messages),
//! and the happy path pays nothing: savepoints (two more round trips per message) are only used on a replay.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tracing::Instrument;
use workflows::EventEnvelope;

use super::{Incoming, Ingestor, OffsetUpdate};
use crate::db::errors::{Fault, fault};
use crate::db::events::{self, EventSource, Ingested, NewJobs};
use jobs::queue::{self, announce};

/// Why a batch was not written. Data errors never end up here: their messages are quarantined instead.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Our infrastructure failed before the outcome was decided (connection, server, pool, a serialization
    /// failure or deadlock): nothing was written; retry the batch with backoff.
    #[error("cannot write the batch")]
    Infrastructure(#[source] sqlx::Error),
    /// COMMIT was sent but its answer was lost (the connection died): the batch may or may not be stored.
    /// The caller must re-read the stored offsets before deciding what to write again, never assume either way.
    #[error("the batch's commit outcome is unknown")]
    CommitUnknown(#[source] sqlx::Error),
}

/// How one attempt failed: the data's fault (replay with savepoints), or a `BatchError`.
enum WriteError {
    Data(sqlx::Error),
    Batch(BatchError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match fault(&e) {
            Fault::Data(_) => Self::Data(e),
            Fault::Infrastructure => Self::Batch(BatchError::Infrastructure(e)),
        }
    }
}

/// Whether each message gets its own savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// The fast path: the whole batch, no savepoints.
    Batch,
    /// The replay after a data error: a savepoint per message, refused messages quarantined.
    PerMessage,
}

/// What a committed attempt wrote.
#[derive(Default)]
struct Written {
    ingested: Vec<Ingested>,
    quarantined: u64,
}

/// A message whose data Postgres refused.
struct Refused {
    code: &'static str,
    reason: String,
}

impl Ingestor {
    /// Write a batch in ONE transaction: events with their deliveries and jobs, unparsable and refused messages to
    /// quarantine, and the next offset of each partition. Nothing is written unless everything is; a message
    /// Postgres refuses is quarantined (never retried), so one message can never stop a partition.
    pub async fn ingest_batch(
        &self,
        batch: &[Incoming<'_>],
        offsets: Option<&OffsetUpdate>,
    ) -> Result<Vec<Ingested>, BatchError> {
        let attempt = match self.write(batch, offsets, Isolation::Batch).await {
            Err(WriteError::Data(e)) => {
                tracing::warn!(
                    error = %e,
                    messages = batch.len(),
                    "Postgres refused a message of the batch; writing it again with a savepoint per message"
                );
                self.write(batch, offsets, Isolation::PerMessage).await
            }
            other => other,
        };
        let written = attempt.map_err(|e| match e {
            // Outside any message's savepoint (offsets, quarantine rows): not a message's fault.
            WriteError::Data(e) => BatchError::Infrastructure(e),
            WriteError::Batch(e) => e,
        })?;
        self.metrics
            .messages_quarantined
            .inc_by(written.quarantined);
        for r in &written.ingested {
            self.count(r);
        }
        Ok(written.ingested)
    }

    async fn write(
        &self,
        batch: &[Incoming<'_>],
        offsets: Option<&OffsetUpdate>,
        isolation: Isolation,
    ) -> Result<Written, WriteError> {
        // Its jobs are announced after the commit, by one NOTIFY outside it (jobs::queue::announce).
        let mut tx = announce::begin_quiet(&self.pool).await?;
        if let Some(o) = offsets {
            crate::db::offsets::store_offsets(&mut tx, &o.group, &o.topics, &o.partitions, &o.next)
                .await?;
        }
        let mut written = Written::default();
        let mut jobs = NewJobs::default();
        for item in batch {
            let refused = match (&item.parsed, isolation) {
                (Err(reason), _) => Refused {
                    code: reason.code(),
                    reason: reason.to_string(),
                },
                (Ok(event), Isolation::Batch) => {
                    let (ingested, new) =
                        events::fan_out(&mut tx, event, &item.source(), None, self.sendable())
                            .instrument(item.span(event))
                            .await?;
                    jobs.append(new);
                    written.ingested.push(ingested);
                    continue;
                }
                (Ok(event), Isolation::PerMessage) => {
                    let span = item.span(event);
                    match fan_out_in_savepoint(&mut tx, event, &item.source())
                        .instrument(span)
                        .await?
                    {
                        Ok(ingested) => {
                            written.ingested.push(ingested);
                            continue;
                        }
                        Err(refused) => refused,
                    }
                }
            };
            events::quarantine(&mut tx, &item.quarantined(refused.code, refused.reason)).await?;
            written.quarantined += 1;
        }
        let mut queued = self.queue(&mut tx, jobs).await?;
        tx.commit().await.map_err(commit_error)?;
        // Events ingested in their savepoints queued their jobs there, for a claim; a wake-up for none costs one.
        queued.waiting |= isolation == Isolation::PerMessage && !written.ingested.is_empty();
        self.committed(queued);
        Ok(written)
    }
}

/// A failed COMMIT: if the server answered, it rolled back and we know it; if the connection failed, we don't.
fn commit_error(e: sqlx::Error) -> WriteError {
    if commit_outcome_unknown(&e) {
        WriteError::Batch(BatchError::CommitUnknown(e))
    } else {
        WriteError::from(e)
    }
}

/// Whether a failed COMMIT may still have committed: the server did not answer (the connection failed), so nobody
/// knows. An answer from the server (a database error) means it rolled back.
pub(super) fn commit_outcome_unknown(e: &sqlx::Error) -> bool {
    !matches!(e, sqlx::Error::Database(_))
}

/// `jobs`, each due now.
pub(super) fn due_now(jobs: Vec<jobs::Job>) -> Vec<(jobs::Job, Duration)> {
    jobs.into_iter().map(|j| (j, Duration::ZERO)).collect()
}

/// Fan one event out (and queue its jobs) inside a savepoint. `Ok(Err(_))`: Postgres refused its data; the
/// savepoint was rolled back and the batch's transaction is still usable.
async fn fan_out_in_savepoint(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    source: &EventSource,
) -> Result<Result<Ingested, Refused>, WriteError> {
    let mut savepoint = conn.begin().await?;
    let result = async {
        let (ingested, new) = events::fan_out(&mut savepoint, event, source, None, false).await?;
        queue::push(&mut savepoint, due_now(new.jobs))
            .await
            .map_err(queue::as_sqlx)?;
        Ok::<_, sqlx::Error>(ingested)
    }
    .await;
    match result {
        Ok(ingested) => {
            savepoint.commit().await?;
            Ok(Ok(ingested))
        }
        Err(e) => match fault(&e) {
            Fault::Data(code) => {
                savepoint.rollback().await?;
                tracing::warn!(error = %e, event_id = %event.event_id, "Postgres refused an event; quarantining it");
                Ok(Err(Refused {
                    code,
                    reason: refusal_text(&e),
                }))
            }
            Fault::Infrastructure => Err(WriteError::Batch(BatchError::Infrastructure(e))),
        },
    }
}

/// The database's own words, with the SQLSTATE, for the quarantine row.
fn refusal_text(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!(
            "Postgres refused the event: {} (SQLSTATE {})",
            db.message(),
            db.code().unwrap_or_default()
        ),
        None => format!("Postgres refused the event: {e}"),
    }
}
