-- Connectors: per-store channel configs, their outbound jobs (same lifecycle as webhook deliveries), the sync log,
-- and the inbound records already published (so a record is published once per config).

CREATE TABLE connector_configs (
    config_id           UUID PRIMARY KEY,
    store_id            TEXT NOT NULL,
    connector_type      TEXT NOT NULL,
    display_name        TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    is_active           BOOLEAN NOT NULL DEFAULT FALSE,
    event_subscriptions TEXT[] NOT NULL DEFAULT '{}',
    -- Non-sensitive settings only; credentials live in the secret store at connector/{config_id}/….
    settings            JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    -- Which credential fields are set (never their values).
    credentials_set     TEXT[] NOT NULL DEFAULT '{}',
    credentials_updated_at TIMESTAMPTZ,
    -- Inbound polling: NULL interval = no polling. poll_seq is bumped whenever a poll is queued; a queued poll
    -- whose number is not current was superseded and does nothing (one poll per config at a time).
    poll_interval_secs  INT CHECK (poll_interval_secs IS NULL OR poll_interval_secs BETWEEN 1 AND 86400),
    poll_seq            INT NOT NULL DEFAULT 0,
    next_poll_at        TIMESTAMPTZ,
    poll_cursor         TEXT,
    last_polled_at      TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at          TIMESTAMPTZ
);
CREATE INDEX connector_configs_store ON connector_configs (store_id, config_id) WHERE deleted_at IS NULL;
CREATE INDEX connector_configs_fanout ON connector_configs USING GIN (event_subscriptions) WHERE is_active AND deleted_at IS NULL;

CREATE TABLE connector_jobs (
    job_id          UUID PRIMARY KEY,
    config_id       UUID NOT NULL REFERENCES connector_configs (config_id),
    store_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    event_id        UUID NOT NULL,
    event_payload   JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'FAILED', 'SUCCEEDED', 'DEAD_LETTERED', 'CANCELLED')),
    attempt_number  INT NOT NULL DEFAULT 0 CHECK (attempt_number BETWEEN 0 AND 5),
    dispatch_seq    INT NOT NULL DEFAULT 1 CHECK (dispatch_seq >= 1),
    next_retry_at   TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT connector_jobs_one_per_event_and_config UNIQUE (event_id, config_id),
    CHECK (status <> 'FAILED' OR next_retry_at IS NOT NULL)
);
CREATE INDEX connector_jobs_by_config ON connector_jobs (config_id, created_at DESC, job_id DESC);
CREATE INDEX connector_jobs_waiting ON connector_jobs (config_id) WHERE status IN ('PENDING', 'FAILED');

-- Every run: one row per outbound attempt and per poll.
CREATE TABLE connector_sync_log (
    run_id          UUID PRIMARY KEY,
    config_id       UUID NOT NULL REFERENCES connector_configs (config_id),
    store_id        TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    entity_type     TEXT NOT NULL,
    record_count    INT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'SKIPPED')),
    error_summary   TEXT,
    -- Outbound: the job, its event and attempt. Inbound: the poll's number.
    job_id          UUID REFERENCES connector_jobs (job_id),
    event_type      TEXT,
    attempt_number  INT,
    poll_seq        INT,
    requests        INT NOT NULL DEFAULT 0,
    worker          TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL
);
-- run_id is a UUIDv7: ordering by it is ordering by start time.
CREATE INDEX connector_sync_log_by_config ON connector_sync_log (config_id, run_id DESC);
-- A poll is logged once: the poll_seq chain allows one run per number.
CREATE UNIQUE INDEX connector_sync_log_one_per_poll ON connector_sync_log (config_id, poll_seq) WHERE poll_seq IS NOT NULL;

CREATE TABLE connector_inbound_records (
    config_id     UUID NOT NULL REFERENCES connector_configs (config_id),
    external_id   TEXT NOT NULL,
    event_id      UUID NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (config_id, external_id)
);
