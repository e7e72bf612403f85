-- Payload filters (README, "Payload filters"): an SQL/JSON path predicate over the webhook body, evaluated by the
-- fan-out statement itself (`body @@ payload_filter`); NULL delivers every event the subscription's types select.
ALTER TABLE webhook_subscriptions ADD COLUMN payload_filter jsonpath;
