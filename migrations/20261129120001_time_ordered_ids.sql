-- Delivery and connector job ids are UUIDv7 (RFC 9562: a millisecond timestamp, then random bits), as the ids the
-- service makes in Rust already are (`Uuid::now_v7`). A random (v4) id puts each new row's entry at a random place
-- of the primary key, of the attempts' key and of the queue's idempotency keys, so on a log of millions of rows
-- every insert reads and dirties a leaf page that is rarely cached; time-ordered ids append to the right-hand pages,
-- which stay in memory (docs/benchmarks.md, "Flat with growth"). PostgreSQL 18 has uuidv7(); this is the same for
-- the versions we support: a random UUID with its first 48 bits replaced by the Unix time in ms and its version
-- nibble set to 7 (bits 52 and 53 of the v4 byte string; the variant bits are already RFC 9562's).
CREATE FUNCTION ss3_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
               PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
               FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;
