-- The delivery log filtered by event type (API `eventType`, the admin panel's filter): without it, a type with few
-- or no deliveries walked the store's whole log (235-359 ms at 1 million deliveries, docs/benchmarks.md).
CREATE INDEX webhook_deliveries_by_event_type
    ON webhook_deliveries (store_id, event_type, created_at DESC, delivery_id DESC);
