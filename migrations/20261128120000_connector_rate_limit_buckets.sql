-- Rate limits per operation: a channel meters some operations with their own usage plan (SP-API searchOrders:
-- 0.0056/s, burst 20), so a config has one GCRA state per bucket: '' is the config's own limit (every existing row),
-- any other value an operation's plan. Self-contained: only this unlogged table changes.
ALTER TABLE connector_rate_limits ADD COLUMN bucket TEXT NOT NULL DEFAULT '';
ALTER TABLE connector_rate_limits DROP CONSTRAINT connector_rate_limits_pkey;
ALTER TABLE connector_rate_limits ADD PRIMARY KEY (config_id, bucket);
