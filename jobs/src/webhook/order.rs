//! Ordered delivery (README, "Ordered delivery"): the deliveries of an ordered subscription form lines, one per
//! ordering key, and only a line's head has a job. The others wait, without a job and without a worker slot, until
//! the head is DELIVERED, DEAD_LETTERED or CANCELLED; then the line moves on to its next delivery in ingest order.
//!
//! Every change to a line locks its `webhook_order_heads` row first: ingest (the fan-out statement adds a new
//! delivery to its line with an upsert that locks the row), the worker's flush (moving a finished head on), a
//! re-trigger (a restarted delivery rejoins its line at its old place), and the subscription turning unordered
//! (every waiting delivery gets its job). Moving on reads the line's waiting deliveries in a statement that starts
//! after the lock was taken, so it sees every delivery an ingest that held the lock before had added.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;
use workflows::ids::{DeliveryId, SubscriptionId};

use super::WebhookDeps;
use crate::Job;
use crate::attempt::OutboundKind;

/// Lock the lines of `deliveries` (those of ordered subscriptions; others are ignored), creating a line that has
/// no row when `create` (a re-trigger: its line may be gone), and move each on: a line whose head is missing or
/// finished gets its earliest waiting delivery as the new head (returned as a job due now), and a line with nothing
/// waiting is removed. A line whose head is still in progress is left alone, so this is safe to call for any
/// delivery at any time.
pub async fn advance(
    conn: &mut PgConnection,
    deliveries: &[Uuid],
    create: bool,
) -> sqlx::Result<Vec<Job>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    // Sorted, so that two flushes lock shared lines in the same order.
    let lock = if create { CREATE_AND_LOCK } else { LOCK };
    let lines: Vec<(Uuid, String)> = sqlx::query_as(lock)
        .bind(deliveries)
        .fetch_all(&mut *conn)
        .await?;
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let (subscriptions, keys): (Vec<Uuid>, Vec<String>) = lines.into_iter().unzip();
    let heads: Vec<(Uuid, i32, Uuid)> = sqlx::query_as(MOVE_ON)
        .bind(&subscriptions)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
    Ok(heads
        .into_iter()
        .map(|(delivery_id, dispatch_seq, subscription_id)| {
            WebhookDeps::job(DeliveryId(delivery_id), subscription_id, dispatch_seq)
        })
        .collect())
}

/// Lock the existing lines of deliveries `$1` (a row lock, no new row version), in line order.
const LOCK: &str = "
    SELECT h.subscription_id, h.ordering_key
    FROM (SELECT DISTINCT subscription_id, ordering_key FROM webhook_deliveries
          WHERE delivery_id = ANY($1) AND ordering_key IS NOT NULL
          ORDER BY subscription_id, ordering_key) d
    CROSS JOIN LATERAL (
        SELECT x.subscription_id, x.ordering_key FROM webhook_order_heads x
        WHERE x.subscription_id = d.subscription_id AND x.ordering_key = d.ordering_key
        LIMIT 1 FOR UPDATE) h";

/// Lock the lines of deliveries `$1`, creating those that have no row (with no head), in line order.
const CREATE_AND_LOCK: &str = "
    INSERT INTO webhook_order_heads AS h (subscription_id, ordering_key)
    SELECT DISTINCT subscription_id, ordering_key FROM webhook_deliveries
    WHERE delivery_id = ANY($1) AND ordering_key IS NOT NULL
    ORDER BY subscription_id, ordering_key
    ON CONFLICT (subscription_id, ordering_key) DO UPDATE SET head = h.head
    RETURNING subscription_id, ordering_key";

/// Move locked lines on (`$1`, `$2`: their subscriptions and keys): the lines whose head is missing or finished
/// take their earliest waiting delivery as head, or are removed when none waits. Returns the new heads. Every
/// lookup is by key (a line by its primary key, its head by id, its next delivery by the ordered index), so a flush
/// costs the same whatever the number of lines and waiting deliveries; no plan depends on fresh statistics.
const MOVE_ON: &str = "
    WITH lines AS (
        SELECT h.ctid AS line, h.subscription_id, n.delivery_id AS next, n.dispatch_seq
        FROM unnest($1::uuid[], $2::text[]) AS l(subscription_id, ordering_key)
        -- LIMIT keeps each lookup a subquery of its own (never flattened into a scan of every line).
        CROSS JOIN LATERAL (
            SELECT x.ctid, x.subscription_id, x.ordering_key, x.head FROM webhook_order_heads x
            WHERE x.subscription_id = l.subscription_id AND x.ordering_key = l.ordering_key LIMIT 1) h
        LEFT JOIN LATERAL (
            SELECT d.delivery_id, d.dispatch_seq FROM webhook_deliveries d
            WHERE d.subscription_id = h.subscription_id AND d.ordering_key = h.ordering_key
              AND d.ordering_key IS NOT NULL AND d.status IN ('PENDING', 'FAILED')
            ORDER BY d.subscription_id, d.ordering_key, d.order_seq LIMIT 1) n ON TRUE
        WHERE h.head IS NULL
           OR COALESCE((SELECT c.status FROM webhook_deliveries c WHERE c.delivery_id = h.head), '')
              NOT IN ('PENDING', 'FAILED')
    ), removed AS (
        DELETE FROM webhook_order_heads WHERE ctid = ANY(ARRAY(SELECT line FROM lines WHERE next IS NULL))
    ), moved AS (
        UPDATE webhook_order_heads h SET head = l.next FROM lines l
        WHERE h.ctid = ANY(ARRAY(SELECT line FROM lines WHERE next IS NOT NULL)) AND h.ctid = l.line
        RETURNING l.next, l.dispatch_seq, h.subscription_id
    )
    SELECT next, dispatch_seq, subscription_id FROM moved";

/// Of `deliveries` just restarted (re-triggered), the jobs to queue: an unordered delivery's own job, due now; an
/// ordered one rejoins its line at its old place (its `order_seq`), so it gets a job only if it is now the head.
pub async fn restarted(
    conn: &mut PgConnection,
    deliveries: Vec<(Job, Duration)>,
) -> sqlx::Result<Vec<(Job, Duration)>> {
    let ids: Vec<Uuid> = deliveries
        .iter()
        .filter_map(|(job, _)| delivery(job))
        .collect();
    let ordered: Vec<Uuid> = sqlx::query_scalar(
        "SELECT delivery_id FROM webhook_deliveries WHERE delivery_id = ANY($1) AND ordering_key IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    if ordered.is_empty() {
        return Ok(deliveries);
    }
    let mut jobs: Vec<(Job, Duration)> = deliveries
        .into_iter()
        .filter(|(job, _)| delivery(job).is_none_or(|id| !ordered.contains(&id)))
        .collect();
    jobs.extend(
        advance(conn, &ordered, true)
            .await?
            .into_iter()
            .map(|job| (job, Duration::ZERO)),
    );
    Ok(jobs)
}

/// The delivery a job attempts.
fn delivery(job: &Job) -> Option<Uuid> {
    match job {
        Job::WebhookDelivery(d) => Some(d.delivery_id.uuid()),
        _ => None,
    }
}

/// A subscription stops delivering in order (it turned unordered, or its waiting deliveries were cancelled): its
/// lines are removed and its waiting deliveries leave them. Returns the jobs of those that were waiting without one
/// (a head keeps its own job). Lines are locked (removed) before the waiting deliveries are read, so a concurrent
/// ingest that added to a line is either seen here or, once this commits, starts a new line of its own.
pub async fn release(
    conn: &mut PgConnection,
    subscription: SubscriptionId,
) -> sqlx::Result<Vec<(Job, Duration)>> {
    let heads: Vec<Option<Uuid>> = sqlx::query_scalar(
        "DELETE FROM webhook_order_heads WHERE (subscription_id, ordering_key) IN (
             SELECT subscription_id, ordering_key FROM webhook_order_heads WHERE subscription_id = $1
             ORDER BY ordering_key FOR UPDATE)
         RETURNING head",
    )
    .bind(subscription)
    .fetch_all(&mut *conn)
    .await?;
    let heads: Vec<Uuid> = heads.into_iter().flatten().collect();
    let waiting: Vec<(Uuid, i32)> = sqlx::query_as(
        "UPDATE webhook_deliveries SET ordering_key = NULL, order_seq = NULL, updated_at = now()
         WHERE subscription_id = $1 AND ordering_key IS NOT NULL AND status IN ('PENDING', 'FAILED')
         RETURNING delivery_id, dispatch_seq",
    )
    .bind(subscription)
    .fetch_all(&mut *conn)
    .await?;
    Ok(waiting
        .into_iter()
        .filter(|(id, _)| !heads.contains(id))
        .map(|(delivery_id, dispatch_seq)| {
            let job = WebhookDeps::job(DeliveryId(delivery_id), subscription.uuid(), dispatch_seq);
            (job, Duration::ZERO)
        })
        .collect())
}
