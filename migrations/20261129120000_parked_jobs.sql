-- Parked jobs (jobs/src/queue/parked.rs): a job due more than two minutes after it is pushed keeps its lane under
-- `metadata -> 'parked'` instead of `metadata -> 'lane'`, so the claim's walk over the lane index never visits a
-- lane holding only jobs due later; workers promote parked jobs into their lanes a minute before they are due.

-- The promotion's scan: parked jobs by due time.
CREATE INDEX apalis_jobs_parked ON apalis.jobs (run_at) WHERE metadata ? 'parked';

-- Jobs already waiting that far ahead are parked now, as they would have been when pushed.
UPDATE apalis.jobs SET metadata = (metadata - 'lane'::text) || hstore('parked', metadata -> 'lane')
WHERE job_type = 'integration-service' AND status = 'Pending' AND metadata ? 'lane'
  AND run_at > now() + interval '2 minutes';
