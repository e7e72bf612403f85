-- The rate limit of each connector config, shared by every worker process: GCRA's one timestamp per config
-- (workflows::ratelimit), advanced by Postgres' clock. UNLOGGED: no WAL and no fsync per call; after a crash the
-- table is empty, which only forgets at most one burst's worth of pacing.
CREATE UNLOGGED TABLE connector_rate_limits (
    config_id UUID PRIMARY KEY,
    tat       TIMESTAMPTZ
);
