-- Issue 11: one outbox row per topic per flush, carrying every event of that flush (`messages`: a JSON array of
-- {"key": …, "value": …}), instead of one row per event: the insert, the relay's claim, its "published" mark and the
-- retention delete are paid once per flush, not once per delivery. The relay publishes each message as its own
-- Kafka record, as before.
ALTER TABLE outbox ADD COLUMN messages JSONB;
UPDATE outbox SET messages = jsonb_build_array(jsonb_build_object('key', message_key, 'value', payload));
ALTER TABLE outbox ALTER COLUMN messages SET NOT NULL,
    ADD CONSTRAINT outbox_messages_array CHECK (jsonb_typeof(messages) = 'array'),
    DROP COLUMN message_key,
    DROP COLUMN payload;

-- One row per event, as the outbox held them before: for operators and tests.
CREATE VIEW outbox_messages AS
SELECT o.outbox_id, m.position, o.topic, m.message ->> 'key' AS message_key, m.message -> 'value' AS payload,
       o.created_at, o.published_at
FROM outbox o CROSS JOIN LATERAL jsonb_array_elements(o.messages) WITH ORDINALITY AS m(message, position);
