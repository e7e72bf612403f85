//! Connector polls: scheduling them. The worker loads them and writes what a poll found (`jobs::queue`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::Job;
use jobs::connector::handler::PollConnector;
use jobs::queue;
use sqlx::PgConnection;
use workflows::ids::ConnectorId;

/// Queue a poll of an active polling config `delay` from now, superseding any queued one. `None` if it does not poll.
/// `now` is the service clock's (the worker compares `next_poll_at` with its own clock).
pub async fn schedule_poll(
    conn: &mut PgConnection,
    config_id: ConnectorId,
    now: DateTime<Utc>,
    delay: Duration,
) -> Result<Option<i32>, sqlx::Error> {
    let seq: Option<i32> = sqlx::query_scalar(
        "UPDATE connector_configs SET poll_seq = poll_seq + 1, next_poll_at = $2
         WHERE config_id = $1 AND is_active AND deleted_at IS NULL AND poll_interval_secs IS NOT NULL
         RETURNING poll_seq",
    )
    .bind(config_id)
    .bind(now + chrono::Duration::from_std(delay).unwrap_or_default())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(poll_seq) = seq {
        queue::push(
            conn,
            vec![(
                Job::ConnectorPoll(PollConnector {
                    config_id,
                    poll_seq,
                }),
                delay,
            )],
        )
        .await
        .map_err(queue::as_sqlx)?;
    }
    Ok(seq)
}
