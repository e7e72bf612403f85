-- The delivery log filtered by a status other than DELIVERED (FAILED, DEAD_LETTERED, PENDING, CANCELLED), alone or
-- with other filters. Such deliveries are few, but without this index a filter on one of them walked every delivery
-- of the store, or of the store's event type, to find the few: on a log of 11.5 million deliveries,
-- `status=CANCELLED&event_type=customer.created` (none) took 1.2 s (docs/benchmarks.md, "Flat with growth").
-- Partial, so a delivered row leaves it: an attempt's status change already updates every index of the table (the
-- status is in the predicates of the partial indexes), and a delivery costs one more entry, made when its row is
-- inserted. db::deliveries::list writes the status as a literal so the planner can prove it is not DELIVERED.
CREATE INDEX webhook_deliveries_by_store_unfinished ON webhook_deliveries (store_id, status, created_at DESC, delivery_id DESC)
    WHERE status <> 'DELIVERED';
