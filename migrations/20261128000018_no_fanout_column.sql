-- Issue 11: an event's fan-out was written by a second statement per event (an UPDATE after its deliveries were
-- inserted) and never read. It is the count of the event's deliveries and connector jobs, which their
-- (event_id, subscription_id) and (event_id, config_id) unique indexes answer.
ALTER TABLE ingested_events DROP COLUMN fanout;
