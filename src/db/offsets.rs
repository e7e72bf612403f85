//! Kafka offsets kept in Postgres: each batch stores the next offsets of its partitions in its own transaction, and
//! ingest resumes from them.

use sqlx::PgConnection;

/// Where ingest must resume on each of these partitions (`None`: never ingested from).
pub async fn next_offsets(
    conn: &mut PgConnection,
    group: &str,
    topics: &[String],
    partitions: &[i32],
) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.topic, o.partition, o.next_offset FROM kafka_offsets o
         JOIN unnest($2::text[], $3::int[]) AS i(topic, partition) ON (o.topic, o.partition) = (i.topic, i.partition)
         WHERE o.group_id = $1",
    )
    .bind(group)
    .bind(topics)
    .bind(partitions)
    .fetch_all(conn)
    .await
}

/// Record the next offsets after a batch, in its transaction (never moving backwards).
pub async fn store_offsets(
    conn: &mut PgConnection,
    group: &str,
    topics: &[String],
    partitions: &[i32],
    next: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO kafka_offsets (group_id, topic, partition, next_offset)
         SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
         ON CONFLICT (group_id, topic, partition) DO UPDATE
           SET next_offset = GREATEST(kafka_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(group)
    .bind(topics)
    .bind(partitions)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}
