-- Seed for scripts/bench-admin.sh: one store's delivery log and its hourly counters, generated in SQL.
-- psql variables: store (the store id), subs (a Postgres array literal of the store's subscription ids, created
-- through the API beforehand), deliveries (count), per (attempt rows per delivery, dispatch_seq 1..per).
-- Ids are md5 of a counter, subscriptions and event types a hash of it (deterministic: the same seed gives the same
-- rows, and neither is correlated with the status, which cycles with the counter). Deliveries are spread over the last
-- 30 days (ending 3 hours ago, so every attempt has finished before now); attempts are 10 minutes apart.
\set ON_ERROR_STOP on
SET TimeZone = 'UTC';
SET work_mem = '256MB';
SET maintenance_work_mem = '512MB';
\timing on

-- Deliveries: 90 % DELIVERED, 5 % DEAD_LETTERED, 3 % FAILED (retry due), 1 % PENDING, 1 % CANCELLED; ten event
-- types (order.paid is one in ten); a JSON envelope of ~500 bytes like the service's.
-- The events' bodies are stored once, on the ingested event (as the fan-out writes them).
WITH g AS (
  SELECT i,
         now() - interval '3 hours' - interval '30 days' * (i::float8 / :deliveries) AS at,
         (ARRAY['order.placed', 'order.placed', 'order.placed', 'order.paid', 'order.fulfilled', 'order.shipped',
                'product.updated', 'product.updated', 'inventory.updated', 'customer.created'])[1 + (hashint4(-i) & 2147483647) % 10] AS et,
         CASE WHEN i % 20 = 0 THEN 'DEAD_LETTERED' WHEN i % 100 IN (1, 2, 3) THEN 'FAILED'
              WHEN i % 100 = 4 THEN 'PENDING' WHEN i % 100 = 5 THEN 'CANCELLED' ELSE 'DELIVERED' END AS st
  FROM generate_series(1, :deliveries) AS i
), ev AS (
  INSERT INTO ingested_events (event_id, event_type, store_id, occurred_at, source, received_at, payload)
  SELECT md5('e' || i)::uuid, et, :'store', at, 'http', at,
       jsonb_build_object(
         'id', md5('e' || i)::uuid, 'type', et, 'storeId', :'store', 'occurredAt', at,
         'data', jsonb_build_object(
           'orderId', 'ord_' || lpad(i::text, 10, '0'), 'customerId', 'cus_' || lpad((i % 50000)::text, 8, '0'),
           'currency', 'EUR', 'total', round((i % 100000) / 100.0, 2), 'status', split_part(et, '.', 2),
           'items', jsonb_build_array(
             jsonb_build_object('sku', 'SKU-' || (i % 997), 'name', 'Blue cotton t-shirt, size M', 'qty', 1 + i % 3, 'price', 19.9),
             jsonb_build_object('sku', 'SKU-' || (i % 991), 'name', 'Canvas tote bag', 'qty', 1, 'price', 12.5)),
           'shippingAddress', jsonb_build_object('line1', (i % 200) || ' Rue de la Paix', 'city', 'Paris',
             'postalCode', '750' || lpad((i % 20)::text, 2, '0'), 'country', 'FR')))
  FROM g
)
INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, status,
    attempt_number, dispatch_seq, next_retry_at, delivered_at, http_status, response_body, response_time_ms,
    last_error, created_at, updated_at)
SELECT md5('d' || i)::uuid,
       (:'subs'::uuid[])[1 + (hashint4(i) & 2147483647) % cardinality(:'subs'::uuid[])],
       :'store',
       et,
       md5('e' || i)::uuid,
       st,
       CASE st WHEN 'DELIVERED' THEN 1 + (i / 20) % 2 WHEN 'DEAD_LETTERED' THEN 5 WHEN 'FAILED' THEN 2 WHEN 'PENDING' THEN 0 ELSE 1 END,
       1,
       CASE WHEN st = 'FAILED' THEN now() + interval '5 minutes' END,
       CASE WHEN st = 'DELIVERED' THEN at + interval '1 second' END,
       CASE st WHEN 'DELIVERED' THEN 200 WHEN 'DEAD_LETTERED' THEN 503 WHEN 'FAILED' THEN 500 END,
       CASE st WHEN 'DELIVERED' THEN '{"ok":true}' WHEN 'DEAD_LETTERED' THEN 'Service Unavailable' END,
       CASE WHEN st <> 'PENDING' THEN 5 + i % 400 END,
       CASE st WHEN 'DEAD_LETTERED' THEN 'HTTP 503 after 5 attempts' WHEN 'FAILED' THEN 'HTTP 500' END,
       at,
       at + CASE st WHEN 'DEAD_LETTERED' THEN interval '90 minutes' ELSE interval '1 second' END
FROM g;

-- Attempts: `per` rows per delivery (dispatch_seq 1..per, attempt_number cycling 1..5 as re-triggers restart the
-- schedule); 80 % delivered. Built without the primary key and the foreign key check (added back below, same
-- schema), which is the slow part of loading 10 million rows; the data is consistent by construction.
ALTER TABLE webhook_delivery_attempts DROP CONSTRAINT webhook_delivery_attempts_pkey;
SET session_replication_role = replica;
INSERT INTO webhook_delivery_attempts (delivery_id, dispatch_seq, attempt_number, outcome, started_at, finished_at,
    http_status, response_body, response_time_ms, error, worker, error_class)
SELECT md5('d' || i)::uuid, s, 1 + (s - 1) % 5,
       CASE WHEN ok THEN 'DELIVERED' ELSE 'FAILED' END,
       t, t + make_interval(secs => rt / 1000.0),
       CASE WHEN ok THEN 200 WHEN cls LIKE 'http_%' THEN substr(cls, 6)::int END,
       CASE WHEN ok THEN '{"ok":true}' WHEN cls LIKE 'http_%' THEN 'upstream error' END,
       rt,
       CASE cls WHEN 'timeout' THEN 'operation timed out' WHEN 'connection_refused' THEN 'connection refused' END,
       'bench-worker-' || (i % 2),
       cls
FROM (
  SELECT i, s, ok, rt,
         now() - interval '3 hours' - interval '30 days' * (i::float8 / :deliveries) + interval '10 minutes' * (s - 1) AS t,
         CASE WHEN ok THEN NULL
              ELSE (ARRAY['http_503', 'http_500', 'timeout', 'connection_refused', 'http_429'])[1 + (i + s) % 5] END AS cls
  FROM (
    SELECT i, s, (i * 7 + s * 3) % 10 < 8 AS ok,
           CASE WHEN (i + s) % 50 = 0 THEN 1500 + (i % 3000) ELSE 5 + (i * 31 + s * 17) % 400 END AS rt
    FROM generate_series(1, :deliveries) AS i, generate_series(1, :per) AS s
  ) a
) b;
SET session_replication_role = origin;
ALTER TABLE webhook_delivery_attempts ADD PRIMARY KEY (delivery_id, dispatch_seq);

-- The hourly counters, derived from the attempts in one statement (as the worker would have counted them:
-- delivered on attempt 1 / later, failed on attempt 5 = dead-lettered, other failures = retrying; the latency
-- buckets of workflows::stats::LATENCY_BOUNDS_MS; failures per error class).
INSERT INTO webhook_stats_hourly (subscription_id, hour, store_id, delivered_first, delivered_retry, dead_lettered,
    retrying, latency, errors)
SELECT subscription_id, hour, :'store', sum(df), sum(dr), sum(dl), sum(rt),
       ARRAY[sum(b0), sum(b1), sum(b2), sum(b3), sum(b4), sum(b5), sum(b6), sum(b7), sum(b8), sum(b9), sum(b10),
             sum(b11), sum(b12)]::bigint[],
       COALESCE(jsonb_object_agg(error_class, dl + rt) FILTER (WHERE error_class IS NOT NULL), '{}')
FROM (
  SELECT d.subscription_id, date_trunc('hour', a.finished_at) AS hour, a.error_class,
         count(*) FILTER (WHERE a.outcome = 'DELIVERED' AND a.attempt_number = 1) AS df,
         count(*) FILTER (WHERE a.outcome = 'DELIVERED' AND a.attempt_number > 1) AS dr,
         count(*) FILTER (WHERE a.outcome = 'FAILED' AND a.attempt_number = 5) AS dl,
         count(*) FILTER (WHERE a.outcome = 'FAILED' AND a.attempt_number < 5) AS rt,
         count(*) FILTER (WHERE a.response_time_ms <= 5) AS b0,
         count(*) FILTER (WHERE a.response_time_ms > 5 AND a.response_time_ms <= 10) AS b1,
         count(*) FILTER (WHERE a.response_time_ms > 10 AND a.response_time_ms <= 25) AS b2,
         count(*) FILTER (WHERE a.response_time_ms > 25 AND a.response_time_ms <= 50) AS b3,
         count(*) FILTER (WHERE a.response_time_ms > 50 AND a.response_time_ms <= 100) AS b4,
         count(*) FILTER (WHERE a.response_time_ms > 100 AND a.response_time_ms <= 250) AS b5,
         count(*) FILTER (WHERE a.response_time_ms > 250 AND a.response_time_ms <= 500) AS b6,
         count(*) FILTER (WHERE a.response_time_ms > 500 AND a.response_time_ms <= 1000) AS b7,
         count(*) FILTER (WHERE a.response_time_ms > 1000 AND a.response_time_ms <= 2500) AS b8,
         count(*) FILTER (WHERE a.response_time_ms > 2500 AND a.response_time_ms <= 5000) AS b9,
         count(*) FILTER (WHERE a.response_time_ms > 5000 AND a.response_time_ms <= 10000) AS b10,
         count(*) FILTER (WHERE a.response_time_ms > 10000 AND a.response_time_ms <= 30000) AS b11,
         count(*) FILTER (WHERE a.response_time_ms > 30000) AS b12
  FROM webhook_delivery_attempts a JOIN webhook_deliveries d USING (delivery_id)
  GROUP BY 1, 2, 3
) per_class
GROUP BY subscription_id, hour;

VACUUM ANALYZE webhook_deliveries;
VACUUM ANALYZE webhook_delivery_attempts;
VACUUM ANALYZE webhook_stats_hourly;
