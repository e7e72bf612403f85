-- The outbox relay deletes a row once every one of its events was published (src/publisher.rs), in the transaction
-- that locked the row for the Kafka call (other relays skip it; the lock writes no row version). A row is written
-- twice, its insert and its delete, instead of four times: its insert, a claim (claimed_until), publication
-- (published_at) and retention's delete, the last two not HOT (published_at was in the partial index's predicate).
-- Every row in the outbox is unpublished.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP VIEW outbox_messages;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN claimed_until, DROP COLUMN published_at;

-- One row per event, as the outbox held them before: for operators and tests.
CREATE VIEW outbox_messages AS
SELECT o.outbox_id, m.position, o.topic, m.message ->> 'key' AS message_key, m.message -> 'value' AS payload,
       o.created_at
FROM outbox o CROSS JOIN LATERAL jsonb_array_elements(o.messages) WITH ORDINALITY AS m(message, position);
