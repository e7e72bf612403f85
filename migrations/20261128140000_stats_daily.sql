-- Closed days of the delivery statistics (issue 12): the retention pass moves the hourly counters of days before
-- yesterday (UTC) into one row per subscription and day, so a store's 30-day statistics read about 30 + 48 rows per
-- subscription instead of 720. Same columns as webhook_stats_hourly; `day` is midnight UTC.
CREATE TABLE webhook_stats_daily (
    subscription_id UUID NOT NULL,
    day             TIMESTAMPTZ NOT NULL,
    store_id        TEXT NOT NULL,
    delivered_first BIGINT NOT NULL,
    delivered_retry BIGINT NOT NULL,
    dead_lettered   BIGINT NOT NULL,
    retrying        BIGINT NOT NULL,
    latency         BIGINT[] NOT NULL,
    errors          JSONB NOT NULL,
    PRIMARY KEY (subscription_id, day)
);
CREATE INDEX webhook_stats_daily_store ON webhook_stats_daily (store_id, day);

-- The current hour's rows are updated by every flush: room on their page lets those updates be HOT (no index
-- entries for the new row version).
ALTER TABLE webhook_stats_hourly SET (fillfactor = 50);
