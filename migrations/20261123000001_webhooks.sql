-- Webhook subscriptions, deliveries, their attempt log, ingested events, quarantine and the outbox.

CREATE TABLE webhook_subscriptions (
    subscription_id UUID PRIMARY KEY,
    store_id        TEXT NOT NULL,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    target_url      TEXT NOT NULL CHECK (target_url ~ '^https?://'),
    events          TEXT[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 100),
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Deleting is soft so that the delivery log keeps pointing at the subscription.
    deleted_at      TIMESTAMPTZ
);
CREATE INDEX webhook_subscriptions_store ON webhook_subscriptions (store_id, subscription_id) WHERE deleted_at IS NULL;
CREATE INDEX webhook_subscriptions_fanout ON webhook_subscriptions USING GIN (events) WHERE is_active AND deleted_at IS NULL;

-- One row per domain event ever accepted: a second sighting of the same event_id is a no-op.
CREATE TABLE ingested_events (
    event_id        UUID PRIMARY KEY,
    event_type      TEXT NOT NULL,
    store_id        TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('kafka', 'http', 'test')),
    kafka_topic     TEXT,
    kafka_partition INT,
    kafka_offset    BIGINT,
    fanout          INT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    delivery_id      UUID PRIMARY KEY,
    subscription_id  UUID NOT NULL REFERENCES webhook_subscriptions (subscription_id),
    store_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    event_id         UUID NOT NULL,
    event_payload    JSONB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'FAILED', 'DELIVERED', 'DEAD_LETTERED', 'CANCELLED')),
    -- Position in the current retry schedule (0 before the first attempt, 5 at most); a re-trigger restarts it.
    attempt_number   INT NOT NULL DEFAULT 0 CHECK (attempt_number BETWEEN 0 AND 5),
    -- Bumped each time an attempt is queued; a queued job whose number is not current is stale and does nothing.
    dispatch_seq     INT NOT NULL DEFAULT 1 CHECK (dispatch_seq >= 1),
    next_retry_at    TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    http_status      INT,
    response_body    TEXT,
    response_time_ms INT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_one_per_event_and_subscription UNIQUE (event_id, subscription_id),
    CHECK (status <> 'DELIVERED' OR delivered_at IS NOT NULL),
    CHECK (status <> 'FAILED' OR next_retry_at IS NOT NULL)
);
-- The log pages by (created_at, delivery_id) descending.
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, created_at DESC, delivery_id DESC);
CREATE INDEX webhook_deliveries_by_store ON webhook_deliveries (store_id, created_at DESC, delivery_id DESC);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (subscription_id, updated_at) WHERE status = 'DEAD_LETTERED';
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (subscription_id) WHERE status IN ('PENDING', 'FAILED');

-- Response bodies are kept up to 4096 bytes (delivery.response_body_limit); see README.
CREATE TABLE webhook_delivery_attempts (
    delivery_id      UUID NOT NULL REFERENCES webhook_deliveries (delivery_id),
    dispatch_seq     INT NOT NULL,
    attempt_number   INT NOT NULL CHECK (attempt_number BETWEEN 1 AND 5),
    outcome          TEXT NOT NULL CHECK (outcome IN ('DELIVERED', 'FAILED')),
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ NOT NULL,
    http_status      INT,
    response_body    TEXT,
    response_time_ms INT NOT NULL,
    error            TEXT,
    worker           TEXT NOT NULL,
    PRIMARY KEY (delivery_id, dispatch_seq)
);

CREATE TABLE quarantined_messages (
    quarantine_id   BIGSERIAL PRIMARY KEY,
    kafka_topic     TEXT NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset    BIGINT NOT NULL,
    message_key     BYTEA,
    payload         BYTEA,
    reason_code     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT quarantined_messages_once UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- Events we publish (webhook.delivered, webhook.dead_lettered…) are written here in the same transaction as the
-- state change, then relayed to Kafka: nothing is lost when Kafka is down, at-least-once when it comes back.
CREATE TABLE outbox (
    outbox_id    BIGSERIAL PRIMARY KEY,
    topic        TEXT NOT NULL,
    message_key  TEXT NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A relay claims rows for a while instead of holding a lock across the Kafka call.
    claimed_until TIMESTAMPTZ,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (outbox_id) WHERE published_at IS NULL;

-- The embedded secret store: AES-256-GCM ciphertexts, the key never in the database.
CREATE TABLE encrypted_secrets (
    path       TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext BYTEA NOT NULL,
    version    INT NOT NULL DEFAULT 1,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
