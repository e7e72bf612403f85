-- An event's body is stored once, on its ingested_events row, instead of once per delivery and per connector job:
-- an event of 1 MiB fanned out to 100 subscriptions was 100 MiB of rows. Deliveries and connector jobs refer to it
-- by event_id (the key they already had). The body is kept only for an event that created deliveries or connector
-- jobs (NULL otherwise), and such an event's row stays as long as any of them does (db::retention).
ALTER TABLE ingested_events ADD COLUMN payload JSONB;

-- A delivery or connector job whose event's row was already removed (the dedupe window is shorter than the log)
-- gets that row back, marked as restored; the others get their body from their first delivery or job.
ALTER TABLE ingested_events DROP CONSTRAINT ingested_events_source_check,
    ADD CONSTRAINT ingested_events_source_check CHECK (source IN ('kafka', 'http', 'test', 'restored'));

INSERT INTO ingested_events (event_id, event_type, store_id, occurred_at, source, received_at, payload)
SELECT DISTINCT ON (event_id) event_id, event_type, store_id, created_at, 'restored', created_at, event_payload
FROM (SELECT event_id, event_type, store_id, created_at, event_payload FROM webhook_deliveries
      UNION ALL
      SELECT event_id, event_type, store_id, created_at, event_payload FROM connector_jobs) bodies
ORDER BY event_id, created_at
ON CONFLICT (event_id) DO UPDATE SET payload = EXCLUDED.payload;

ALTER TABLE webhook_deliveries DROP COLUMN event_payload;
ALTER TABLE connector_jobs DROP COLUMN event_payload;

-- Retention finds events without a body (their ids are only the dedupe window) apart from those with one.
CREATE INDEX ingested_events_unreferenced ON ingested_events (received_at) WHERE payload IS NULL;
