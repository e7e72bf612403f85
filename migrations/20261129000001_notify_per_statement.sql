-- New jobs wake workers with one NOTIFY per statement instead of one per row, and none from a transaction that will
-- announce its jobs itself after committing (issue 11; jobs::queue::announce). Postgres serialises the commits of
-- transactions that sent a NOTIFY, each holding a database-wide lock through its WAL flush: with apalis' per-row
-- trigger, every ingest commit took that lock, and at 500 events/s COMMIT waiting on it was the largest share of
-- Postgres' active time (docs/benchmarks.md, "Soak"). apalis' trigger function stays; only its trigger is disabled.
ALTER TABLE apalis.jobs DISABLE TRIGGER notify_workers;

CREATE FUNCTION notify_new_jobs() RETURNS TRIGGER AS $$
BEGIN
    -- Set (transaction-local) by jobs::queue::announce::begin_quiet.
    IF current_setting('ss3.announce', true) IS DISTINCT FROM 'after_commit' THEN
        PERFORM pg_notify('apalis::job::insert', json_build_object('job_type', due.job_type)::text)
        FROM (SELECT DISTINCT job_type FROM new_jobs WHERE run_at <= now()) AS due;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER notify_workers_per_statement
AFTER INSERT ON apalis.jobs
REFERENCING NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION notify_new_jobs();
