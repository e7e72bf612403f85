-- Per-subscription rate limits (README, "Per-subscription rate limit") share the connectors' limiter: one GCRA
-- state per lane (a connector config's or a subscription's id) and bucket, so the table is named for lanes.
ALTER TABLE connector_rate_limits RENAME TO rate_limits;
ALTER TABLE rate_limits RENAME COLUMN config_id TO lane;
ALTER TABLE webhook_subscriptions ADD COLUMN max_per_second DOUBLE PRECISION
    CONSTRAINT webhook_subscriptions_max_per_second CHECK (max_per_second > 0 AND max_per_second <= 10000);
