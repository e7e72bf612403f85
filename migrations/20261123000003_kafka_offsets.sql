-- The next offset to ingest per partition, written in the transaction that ingested the messages before it.
-- The source of truth for where ingest resumes: a broker's committed offsets are advisory (tansu was measured
-- resuming a restarted member 1,052 messages past the last committed offset).
CREATE TABLE kafka_offsets (
    group_id    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INT NOT NULL,
    next_offset BIGINT NOT NULL CHECK (next_offset >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
