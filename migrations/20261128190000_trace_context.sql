-- The W3C trace context (`traceparent`, then `tracestate` on a second line) of the event that created a webhook
-- delivery or a connector job, stored at fan-out when traces are exported (NULL otherwise): every attempt of the
-- row continues the event's trace, in whichever worker process it runs.
ALTER TABLE webhook_deliveries ADD COLUMN trace_context TEXT;
ALTER TABLE connector_jobs ADD COLUMN trace_context TEXT;
