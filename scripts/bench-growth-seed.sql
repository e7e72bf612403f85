-- Seed for scripts/bench-growth.sh (issue 11, "flat with growth"): a database as a busy deployment would hold it
-- after a month, generated in SQL, in another store than the burst's.
-- psql variables: store (the store id), subs (a Postgres array literal of the store's subscription ids, created
-- through the API beforehand), delivered (rows DELIVERED in the log, each with its one attempt), retries (deliveries
-- FAILED with their next attempt queued in apalis, due 1 to 3 hours from now, spread over the subscriptions).
-- Deliveries are spread over the last 29 days, each with its ingested event (which carries the body). Ids are md5 of a counter, so the same seed gives the same rows.
\set ON_ERROR_STOP on
SET TimeZone = 'UTC';
SET work_mem = '256MB';
SET maintenance_work_mem = '1GB';
\timing on

-- Loading 11 million rows is far faster with the secondary indexes built once at the end: save their definitions,
-- drop them, load, and build them again (the same definitions, so the schema is the migrated one). Foreign keys
-- are not checked while loading (the rows are consistent by construction).
CREATE TEMP TABLE saved_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid IN ('webhook_deliveries'::regclass, 'webhook_delivery_attempts'::regclass,
                     'ingested_events'::regclass)
  AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT name FROM saved_indexes LOOP EXECUTE 'DROP INDEX ' || r.name; END LOOP;
END $$;
SET session_replication_role = replica;

-- The delivered log: one delivery per event, a ~350-byte order envelope (stored once, on the ingested event, as the
-- fan-out writes it: an event with deliveries stays as long as they do), one attempt each.
WITH g AS (
  SELECT i, now() - interval '29 days' * (i::float8 / :delivered) - interval '1 hour' AS at,
         (ARRAY['order.placed', 'order.paid', 'order.fulfilled', 'order.shipped', 'product.updated',
                'inventory.updated', 'customer.created'])[1 + (hashint4(-i) & 2147483647) % 7] AS et
  FROM generate_series(1, :delivered) AS i
), ev AS (
  INSERT INTO ingested_events (event_id, event_type, store_id, occurred_at, source, received_at, payload)
  SELECT md5('e' || i)::uuid, et, :'store', at, 'http', at,
         jsonb_build_object('id', md5('e' || i)::uuid, 'type', et, 'storeId', :'store', 'occurredAt', at,
           'data', jsonb_build_object('orderId', 'ord_' || lpad(i::text, 10, '0'), 'currency', 'EUR',
             'total', round((i % 100000) / 100.0, 2), 'items', jsonb_build_array(
               jsonb_build_object('sku', 'SKU-' || (i % 997), 'qty', 1 + i % 3, 'price', 19.9))))
  FROM g
)
INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, status,
    attempt_number, dispatch_seq, delivered_at, http_status, response_body, response_time_ms, created_at, updated_at)
SELECT md5('d' || i)::uuid, (:'subs'::uuid[])[1 + (hashint4(i) & 2147483647) % cardinality(:'subs'::uuid[])],
       :'store', et, md5('e' || i)::uuid,
       'DELIVERED', 1, 1, at + interval '40 ms', 200, '{"ok":true}', 5 + i % 200, at, at + interval '40 ms'
FROM g;

INSERT INTO webhook_delivery_attempts (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at,
    http_status, response_body, response_time_ms, worker)
SELECT delivery_id, 1, 1, 'DELIVERED', created_at, delivered_at, 200, '{"ok":true}', response_time_ms, 'seed'
FROM webhook_deliveries WHERE store_id = :'store' AND status = 'DELIVERED';

-- The waiting retries: FAILED after their first attempt, the second queued 1 to 3 hours ahead (as an endpoint that
-- has been down for a while leaves them), each with its apalis job, as queue::push writes it.
WITH ev AS (
  INSERT INTO ingested_events (event_id, event_type, store_id, occurred_at, source, received_at, payload)
  SELECT md5('re' || i)::uuid, 'order.placed', :'store', now() - interval '30 minutes', 'http',
         now() - interval '30 minutes',
         jsonb_build_object('id', md5('re' || i)::uuid, 'type', 'order.placed', 'storeId', :'store',
                            'occurredAt', now(), 'data', jsonb_build_object('orderId', 'ord_r' || i))
  FROM generate_series(1, :retries) AS i
)
INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, status,
    attempt_number, dispatch_seq, next_retry_at, http_status, response_body, response_time_ms, last_error,
    created_at, updated_at)
SELECT md5('r' || i)::uuid, (:'subs'::uuid[])[1 + (hashint4(i) & 2147483647) % cardinality(:'subs'::uuid[])],
       :'store', 'order.placed', md5('re' || i)::uuid,
       'FAILED', 1, 2, now() + interval '1 hour' + interval '2 hours' * (i::float8 / :retries), 503,
       'Service Unavailable', 30, 'HTTP 503', now() - interval '30 minutes', now() - interval '30 minutes'
FROM generate_series(1, :retries) AS i;

INSERT INTO webhook_delivery_attempts (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at,
    http_status, response_body, response_time_ms, worker, error_class)
SELECT delivery_id, 1, 1, 'FAILED', created_at, created_at + interval '30 ms', 503, 'Service Unavailable', 30,
       'seed', 'http_503'
FROM webhook_deliveries WHERE store_id = :'store' AND status = 'FAILED';

SET session_replication_role = origin;

INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
    idempotency_key)
SELECT apalis.generate_ulid(), 'integration-service',
       convert_to(json_build_object('kind', 'webhook_delivery', 'delivery_id', delivery_id, 'dispatch_seq', 2,
                                    'subscription_id', subscription_id)::text, 'UTF8'),
       'Pending', 0, 25, next_retry_at, 0,
       -- Parked where the build parks jobs due this far ahead (jobs/src/queue/parked.rs), in the lane otherwise.
       hstore(CASE WHEN to_regclass('apalis.apalis_jobs_parked') IS NULL THEN 'lane' ELSE 'parked' END,
              subscription_id::text),
       'delivery:' || delivery_id || ':attempt:2'
FROM webhook_deliveries WHERE store_id = :'store' AND status = 'FAILED';

DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT def FROM saved_indexes LOOP EXECUTE r.def; END LOOP;
END $$;

VACUUM ANALYZE webhook_deliveries;
VACUUM ANALYZE webhook_delivery_attempts;
VACUUM ANALYZE ingested_events;
VACUUM ANALYZE apalis.jobs;
