-- Autovacuum thresholds for the tables the delivery engine churns (issue 11). With the server's defaults a table is
-- vacuumed once 50 rows + 20 % of it are dead: for a queue whose every job is updated twice and then deleted, and for
-- small tables updated on every attempt, that lets dead versions pile up between vacuums (a soak with no vacuum at all
-- fell from 500 to ~50 deliveries/s: docs/benchmarks.md, "Soak"). These apply where autovacuum runs; where it is off,
-- the worker's sweep vacuums instead (`[worker] vacuum`), with a similar rule.

-- The queue: claimed, acknowledged, then deleted by the sweep (which also analyzes it).
ALTER TABLE apalis.jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                             autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
-- Delivery rows are updated on every attempt; the log grows, so keep a proportional part.
ALTER TABLE webhook_deliveries SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 5000);
-- Small tables updated on every claim, attempt, flush or ingest batch.
ALTER TABLE outbound_lanes SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE webhook_stats_hourly SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE webhook_stats_daily SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE webhook_order_heads SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE kafka_offsets SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
-- One row per flush, marked published by the relay, deleted after a short grace.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
