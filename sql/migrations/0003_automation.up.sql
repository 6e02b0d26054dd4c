-- Automation: every failed Dagster run, recorded by the run-failure sensor.
CREATE TABLE run_failures (
    run_id        text PRIMARY KEY,
    job_name      text NOT NULL,
    partition_key text,
    failed_steps  text[] NOT NULL DEFAULT '{}',
    error_summary text NOT NULL,
    failed_at     timestamptz NOT NULL,
    alerted       boolean NOT NULL DEFAULT false,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_failures_failed_at_idx ON run_failures (failed_at DESC);
