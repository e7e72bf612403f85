-- Auto-disable of dead endpoints (issue 13): a subscription whose every attempt has failed for a while is
-- deactivated with a reason, and `webhook.subscription_disabled` is published.
--   disabled_at / disabled_reason / failing_since: set when the service disabled it (NULL otherwise; cleared when
--     it is activated again);
--   failures_counted_from: failures before this time do not count (set when it is activated again, so a
--     re-enabled subscription gets a whole window before it can be disabled again).
ALTER TABLE webhook_subscriptions
    ADD COLUMN disabled_at           TIMESTAMPTZ,
    ADD COLUMN disabled_reason       TEXT,
    ADD COLUMN failing_since         TIMESTAMPTZ,
    ADD COLUMN failures_counted_from TIMESTAMPTZ NOT NULL DEFAULT '-infinity';

-- The check starts from the subscriptions with dead letters in their counters: few rows, found without a scan.
CREATE INDEX webhook_stats_hourly_dead ON webhook_stats_hourly (subscription_id) WHERE dead_lettered > 0;
CREATE INDEX webhook_stats_daily_dead ON webhook_stats_daily (subscription_id) WHERE dead_lettered > 0;
