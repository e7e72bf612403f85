-- Fair delivery (issue 16). Every job is claimed in its lane: its owner, a webhook subscription or a connector,
-- written into apalis' `metadata` hstore when the job is pushed. A lane has a bounded number of jobs in flight
-- across every worker, and lanes with due work take turns (jobs/src/queue/claim.rs).

-- The per-lane settings and health. A lane without a row has the operator's default limit and is healthy, so the
-- happy path writes nothing here.
CREATE TABLE outbound_lanes (
    lane             UUID PRIMARY KEY,
    -- The owner's own limit of jobs in flight (clamped to the operator's maximum when claiming); NULL: the default.
    max_in_flight    INTEGER CHECK (max_in_flight > 0),
    -- Attempts in a row that timed out or were answered slowly; at the operator's threshold the lane is "slow"
    -- and gets one job in flight at a time until an attempt is answered in time.
    consecutive_slow INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_slow >= 0),
    -- When its current run of slow attempts began (NULL while its last attempt was answered in time).
    slow_since       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The walk over lanes with waiting jobs (one descent per lane) and the lane's oldest due jobs. Partial on apalis'
-- own condition for a claimable job of our queue, so it holds only waiting jobs, never finished ones.
CREATE INDEX apalis_jobs_lane_waiting ON apalis.jobs ((metadata -> 'lane'), run_at)
    WHERE job_type = 'integration-service' AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts));

-- Jobs in flight per lane: only claimed jobs (a batch or so per worker).
CREATE INDEX apalis_jobs_lane_in_flight ON apalis.jobs ((metadata -> 'lane'))
    WHERE status IN ('Queued', 'Running');

-- Jobs queued before this migration carry no lane: give them their owner's.
UPDATE apalis.jobs j SET metadata = COALESCE(j.metadata, ''::hstore) || hstore('lane', owner::text)
FROM (
    SELECT j2.id, COALESCE(d.subscription_id, c.config_id, (p.job ->> 'config_id')::uuid) AS owner
    FROM apalis.jobs j2
    CROSS JOIN LATERAL (SELECT convert_from(j2.job, 'UTF8')::jsonb AS job) p
    LEFT JOIN webhook_deliveries d ON p.job ->> 'kind' = 'webhook_delivery' AND d.delivery_id = (p.job ->> 'delivery_id')::uuid
    LEFT JOIN connector_jobs c ON p.job ->> 'kind' = 'connector_sync' AND c.job_id = (p.job ->> 'job_id')::uuid
    WHERE j2.job_type = 'integration-service' AND j2.status IN ('Pending', 'Failed', 'Queued', 'Running')
) owners
WHERE j.id = owners.id AND owners.owner IS NOT NULL AND NOT COALESCE(j.metadata ? 'lane', FALSE);
