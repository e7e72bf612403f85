//! The health of lanes (a job's owner: subscription, connector), kept for the slow-receiver circuit breaker that
//! the claim reads ([`crate::queue::claim`]): attempts in a row that timed out or were answered slowly. An attempt
//! answered in time resets the run. Lanes that stay healthy have no row and cost no write.

/// The common table expressions that count a flush's slow attempts against their lanes, for the statement that logs
/// the attempts (one round trip for both): `lanes` and `slow` name its array parameters, one element per attempt
/// (`"$13"`, `"$18"`). Within a flush, one attempt of a lane answered in time is enough to reset it: the receiver
/// answers again. Lanes that stay healthy cost no write. Slowed lanes are written in key order, so two flushes
/// slowing the same lanes wait for each other instead of deadlocking.
pub fn health(lanes: &str, slow: &str) -> String {
    format!(
        "health AS (
           SELECT lane, bool_or(NOT slow) AS answered, count(*) FILTER (WHERE slow)::int AS slow
           FROM unnest({lanes}::uuid[], {slow}::bool[]) AS i(lane, slow) GROUP BY lane),
         recovered AS (
           UPDATE outbound_lanes o SET consecutive_slow = 0, slow_since = NULL, updated_at = now()
           FROM health h WHERE o.lane = h.lane AND h.answered AND o.consecutive_slow > 0),
         slowed AS (
           INSERT INTO outbound_lanes AS o (lane, consecutive_slow, slow_since)
           SELECT lane, slow, now() FROM health WHERE NOT answered ORDER BY lane
           ON CONFLICT (lane) DO UPDATE SET consecutive_slow = o.consecutive_slow + EXCLUDED.consecutive_slow,
             slow_since = COALESCE(o.slow_since, now()), updated_at = now())"
    )
}

/// Lanes whose run of slow attempts has reached `slow_after` (they have one job in flight at a time).
pub async fn slow_lanes(pool: &sqlx::PgPool, slow_after: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbound_lanes WHERE consecutive_slow >= $1")
        .bind(i32::try_from(slow_after).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await
}
