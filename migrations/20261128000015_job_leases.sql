-- Leases on claimed jobs (issue 15): the rescue looks for claimed jobs whose lock_at is too old. This partial index
-- holds only claimed jobs (a batch or so per worker), so the rescue stays cheap however many jobs wait or are done.
CREATE INDEX IF NOT EXISTS apalis_jobs_lease ON apalis.jobs (lock_at) WHERE status IN ('Queued', 'Running');
