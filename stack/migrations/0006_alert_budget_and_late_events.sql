-- Behaviour-anomaly alerts within a budget (ml/scoring.py): `is_anomaly` is the score at or past the
-- model's threshold; `alerted` says an alert was raised for the user on that day (a trusted model, within
-- the day's budget of alert_share x eligible users; once raised, it stays raised however often the day is
-- scored again).
ALTER TABLE user_anomaly_scores ADD COLUMN IF NOT EXISTS alerted BOOLEAN NOT NULL DEFAULT false;

-- One row per scoring of a day by the anomaly champion: what the dashboard shows of the model's state.
CREATE TABLE IF NOT EXISTS ml_scoring_runs (
    scored_date         DATE             NOT NULL,
    scored_at           TIMESTAMPTZ      NOT NULL DEFAULT now(),
    model_name          TEXT             NOT NULL,
    model_version       TEXT             NOT NULL,
    as_of               TIMESTAMPTZ,                -- the end of the features' window that was scored
    trusted             BOOLEAN          NOT NULL,  -- false: trained on less than a whole window of data
    history_days        DOUBLE PRECISION NOT NULL,  -- days of its window the model's training data covered
    eligible_users      INTEGER          NOT NULL,
    past_threshold      INTEGER          NOT NULL,
    alerted_users       INTEGER          NOT NULL,  -- alerts of the day, this scoring's and earlier ones
    new_alerts          INTEGER          NOT NULL,
    budget              INTEGER          NOT NULL,
    capped              INTEGER          NOT NULL,  -- past the threshold but over the budget: no alert
    threshold           DOUBLE PRECISION NOT NULL,
    dagster_run_id      TEXT,
    PRIMARY KEY (scored_date, scored_at, model_name)
);
CREATE INDEX IF NOT EXISTS ml_scoring_runs_latest ON ml_scoring_runs (scored_at DESC);

-- Valid events whose date is outside the event-day partitions (older than the lookback, late or replayed):
-- they are in bronze and in no silver day until the partitions' start is moved and the days backfilled.
-- One row per landed window and event date, upserted by the landing run (a rerun writes the same rows).
CREATE TABLE IF NOT EXISTS events_outside_partitions (
    window_start        TIMESTAMPTZ      NOT NULL,
    event_date          DATE             NOT NULL,
    rows                BIGINT           NOT NULL,
    dagster_run_id      TEXT,
    recorded_at         TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, event_date)
);
