-- apalis-postgres' migrations leave two exact duplicates on apalis.jobs: unique_job_id (a unique index on id, the
-- primary key's column) and LIdx (on lock_by, which idx_apalis_jobs_lock_by indexes again); its streamline_indices
-- migration dropped the other early indexes (TIdx, SIdx, JTIdx, Idx) but not these two. Every job insert, and every
-- update of a job that is not HOT (its claim, its acknowledgement), wrote an entry into both twice.
DROP INDEX IF EXISTS apalis.unique_job_id;
DROP INDEX IF EXISTS apalis.lidx;

-- The lane index holds only jobs in a lane. A parked job (README, "Retries due later are parked") has no 'lane' key,
-- yet had an entry with a NULL key: a million parked retries were a million entries of an index every claim reads.
-- Every query that reads the index compares the lane with a strict operator, which implies the new predicate.
DROP INDEX apalis.apalis_jobs_lane_waiting;
CREATE INDEX apalis_jobs_lane_waiting ON apalis.jobs ((metadata -> 'lane'), run_at)
    WHERE job_type = 'integration-service' AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
      AND (metadata -> 'lane') IS NOT NULL;
