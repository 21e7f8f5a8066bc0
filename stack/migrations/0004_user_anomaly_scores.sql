-- Per-user behaviour anomaly scores by day, published by the ML scoring asset (ml/scoring.py) with the
-- champion `user_anomaly_iforest`: one row per eligible user and feature day, upserted on the key, so a
-- rerun (or a rescoring by a newer champion) replaces the day's row instead of adding one.
CREATE TABLE IF NOT EXISTS user_anomaly_scores (
    user_id             TEXT             NOT NULL,
    scored_date         DATE             NOT NULL,  -- the feature partition scored (7 days up to it)
    score               DOUBLE PRECISION NOT NULL CHECK (score > 0 AND score <= 1),  -- paper's s(x, n)
    threshold           DOUBLE PRECISION NOT NULL,  -- the model's deployed threshold
    is_anomaly          BOOLEAN          NOT NULL,  -- score >= threshold: an ML alert was raised
    severity            TEXT CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),  -- null below threshold
    top_features        TEXT[]           NOT NULL DEFAULT '{}',  -- largest robust z-scores first
    model_name          TEXT             NOT NULL,
    model_version       TEXT             NOT NULL,
    updated_at          TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scored_date)
);
CREATE INDEX IF NOT EXISTS user_anomaly_scores_day_score ON user_anomaly_scores (scored_date, score DESC);
