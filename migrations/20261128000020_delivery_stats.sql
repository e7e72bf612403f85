-- Hourly delivery statistics per subscription (issue 12): written in the transaction that records the attempts, so
-- a 30-day chart reads at most 720 rows per subscription and never scans the delivery log.
--   delivered_first / delivered_retry: attempts that delivered (first attempt / a later one);
--   dead_lettered: attempts whose failure dead-lettered the delivery; retrying: failures that scheduled a retry;
--   latency: response-time histogram, one count per bucket of workflows::stats::LATENCY_BOUNDS_MS (+ the open one);
--   errors: failed attempts per error class (workflows::stats::error_class), {"http_503": 2, "timeout": 1}.
CREATE TABLE webhook_stats_hourly (
    subscription_id UUID NOT NULL,
    hour            TIMESTAMPTZ NOT NULL,
    store_id        TEXT NOT NULL,
    delivered_first BIGINT NOT NULL,
    delivered_retry BIGINT NOT NULL,
    dead_lettered   BIGINT NOT NULL,
    retrying        BIGINT NOT NULL,
    latency         BIGINT[] NOT NULL,
    errors          JSONB NOT NULL,
    PRIMARY KEY (subscription_id, hour)
);
CREATE INDEX webhook_stats_hourly_store ON webhook_stats_hourly (store_id, hour);

-- The error class of a failed attempt, as counted above (NULL for a delivered attempt and for attempts recorded
-- before this migration).
ALTER TABLE webhook_delivery_attempts ADD COLUMN error_class TEXT;
