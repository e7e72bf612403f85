-- Retention (issue 11): batched deletes walk these, oldest first (src/db/retention.rs). Each indexes a column that
-- never changes after insert, so updates of the rows stay HOT-eligible.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
CREATE INDEX connector_jobs_created ON connector_jobs (created_at);
CREATE INDEX connector_sync_log_polls_started ON connector_sync_log (started_at) WHERE job_id IS NULL;
CREATE INDEX ingested_events_received ON ingested_events (received_at);
