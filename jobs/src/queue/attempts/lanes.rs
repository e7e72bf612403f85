//! The health of lanes (a job's owner: subscription, connector), kept for the slow-receiver circuit breaker that
//! the claim reads ([`crate::queue::claim`]): attempts in a row that timed out or were answered slowly. An attempt
//! answered in time resets the run. Lanes that stay healthy have no row and cost no write.

use sqlx::PgConnection;
use uuid::Uuid;

/// Count the slow attempts of a flush against their lanes (`(lane, slow)` per attempt), in one statement. Within a
/// flush, one attempt of a lane answered in time is enough to reset it: the receiver answers again.
pub async fn record_health(
    conn: &mut PgConnection,
    attempts: impl Iterator<Item = (Uuid, bool)>,
) -> sqlx::Result<()> {
    let (lanes, slow): (Vec<Uuid>, Vec<bool>) = attempts.unzip();
    sqlx::query(
        "WITH batch AS (
             SELECT lane, bool_or(NOT slow) AS answered, count(*) FILTER (WHERE slow)::int AS slow
             FROM unnest($1::uuid[], $2::bool[]) AS i(lane, slow) GROUP BY lane
         ), recovered AS (
             UPDATE outbound_lanes o SET consecutive_slow = 0, slow_since = NULL, updated_at = now()
             FROM batch b WHERE o.lane = b.lane AND b.answered AND o.consecutive_slow > 0
         )
         INSERT INTO outbound_lanes AS o (lane, consecutive_slow, slow_since)
         SELECT lane, slow, now() FROM batch WHERE NOT answered
         ON CONFLICT (lane) DO UPDATE SET consecutive_slow = o.consecutive_slow + EXCLUDED.consecutive_slow,
             slow_since = COALESCE(o.slow_since, now()), updated_at = now()",
    )
    .bind(&lanes)
    .bind(&slow)
    .execute(conn)
    .await?;
    Ok(())
}

/// Lanes whose run of slow attempts has reached `slow_after` (they have one job in flight at a time).
pub async fn slow_lanes(pool: &sqlx::PgPool, slow_after: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbound_lanes WHERE consecutive_slow >= $1")
        .bind(i32::try_from(slow_after).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await
}
