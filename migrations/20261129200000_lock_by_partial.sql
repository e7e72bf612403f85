-- apalis' index on lock_by held an entry for every job, and a job waits with no lock_by: each job insert wrote a
-- NULL entry, and a million parked retries were a million entries. Only claimed jobs have a lock_by, and every query
-- that reads the index (apalis' own acknowledgement, keep-alive and orphan re-queue; none of ours needs it) compares
-- lock_by with `=`, which implies the predicate. Claiming still writes an entry; inserting and parking no longer do.
DROP INDEX IF EXISTS apalis.idx_apalis_jobs_lock_by;
CREATE INDEX idx_apalis_jobs_lock_by ON apalis.jobs (lock_by) WHERE lock_by IS NOT NULL;
