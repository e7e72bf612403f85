-- The sweep deletes acknowledged jobs older than `worker.job_retention_secs` (jobs::queue::sweep_finished). Without
-- an index on them its statement read the whole queue every 5 s: with a million retries waiting, 98,000 pages and
-- 350 ms per sweep (docs/benchmarks.md, "Flat with growth"). Only finished jobs are in this one; each
-- acknowledgement adds its entry (the acknowledgement changes the status, so it was never a HOT update anyway).
CREATE INDEX apalis_jobs_finished ON apalis.jobs (done_at) WHERE status = 'Done';
