-- Ordered delivery (README, "Ordered delivery"). A subscription may ask for its deliveries to reach the receiver
-- one at a time, in the order their events were ingested, per ordering key (the value an SQL/JSON path selects in
-- the webhook body; no path: one line for the whole subscription).
ALTER TABLE webhook_subscriptions
    ADD COLUMN ordered      BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN ordering_key jsonpath,
    ADD CONSTRAINT webhook_subscriptions_ordering_key_when_ordered CHECK (ordering_key IS NULL OR ordered);

-- A delivery of an ordered subscription carries its key's value (JSON text, at most 200 characters: a longer value
-- shares its line with those of the same first 200 characters, which only orders more) and its place in the line
-- (a global sequence: for transactions that do not overlap, the order in which they committed). Both NULL for
-- unordered deliveries, which cost nothing here.
ALTER TABLE webhook_deliveries
    ADD COLUMN ordering_key TEXT,
    ADD COLUMN order_seq    BIGINT;

CREATE SEQUENCE webhook_delivery_order;

-- One row per line with a delivery waiting or in progress: `head` is the one delivery of the line that has a job
-- (its attempts and retries); the others wait, without a job, until it is DELIVERED, DEAD_LETTERED or CANCELLED.
-- Ingest and the worker lock this row to add to the line or to move its head on, so neither misses the other.
CREATE TABLE webhook_order_heads (
    subscription_id UUID NOT NULL REFERENCES webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    ordering_key    TEXT NOT NULL,
    head            UUID,
    PRIMARY KEY (subscription_id, ordering_key)
);

-- A line's next delivery: its waiting rows in order (only ordered rows not finished are in it).
CREATE INDEX webhook_deliveries_ordered_waiting ON webhook_deliveries (subscription_id, ordering_key, order_seq)
    WHERE ordering_key IS NOT NULL AND status IN ('PENDING', 'FAILED');
