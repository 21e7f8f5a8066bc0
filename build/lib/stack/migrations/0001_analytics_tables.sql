-- Tables the platform publishes for downstream consumers (dashboard, analysts, services).
-- Every table has the key its writers upsert on, so reruns and redeliveries never duplicate.

CREATE TABLE IF NOT EXISTS security_alerts (
    alert_id            TEXT PRIMARY KEY,             -- deterministic: same evidence, same id
    rule                TEXT        NOT NULL,         -- rule (CEP) or model (ML) that raised it
    severity            TEXT        NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    source              TEXT        NOT NULL,         -- flink_cep | ml_anomaly
    user_id             TEXT,
    ip                  TEXT,
    window_start        TIMESTAMPTZ,
    window_end          TIMESTAMPTZ,
    event_count         INTEGER,
    evidence_event_ids  TEXT[]      NOT NULL DEFAULT '{}',
    trigger_event_id    TEXT,
    trigger_event_ts    TIMESTAMPTZ,                  -- broker time of the event that completed the pattern
    detected_at         TIMESTAMPTZ NOT NULL,         -- when the detector emitted the alert
    details             JSONB       NOT NULL DEFAULT '{}',
    stored_at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS security_alerts_user_detected ON security_alerts (user_id, detected_at DESC);
CREATE INDEX IF NOT EXISTS security_alerts_rule_detected ON security_alerts (rule, detected_at DESC);
CREATE INDEX IF NOT EXISTS security_alerts_detected ON security_alerts (detected_at DESC);

CREATE TABLE IF NOT EXISTS user_segments (
    user_id             TEXT        NOT NULL,
    scored_date         DATE        NOT NULL,         -- the feature partition the segment was scored on
    segment_id          INTEGER     NOT NULL,
    segment_name        TEXT,
    model_name          TEXT        NOT NULL,
    model_version       TEXT        NOT NULL,
    distance_to_centroid DOUBLE PRECISION,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scored_date)
);
CREATE INDEX IF NOT EXISTS user_segments_segment ON user_segments (scored_date, segment_id);

CREATE TABLE IF NOT EXISTS ml_model_metrics (
    model_name          TEXT        NOT NULL,
    model_version       TEXT        NOT NULL,
    metric              TEXT        NOT NULL,
    value               DOUBLE PRECISION NOT NULL,
    mlflow_run_id       TEXT,
    partition_key       TEXT,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version, metric)
);

CREATE TABLE IF NOT EXISTS streaming_performance (
    pipeline            TEXT        NOT NULL,         -- e.g. bronze_user_events
    window_start        TIMESTAMPTZ NOT NULL,         -- the micro-batch window (partition)
    rows_in             BIGINT      NOT NULL,
    rows_out            BIGINT      NOT NULL,
    rows_quarantined    BIGINT      NOT NULL DEFAULT 0,
    seconds             DOUBLE PRECISION NOT NULL,
    rows_per_second     DOUBLE PRECISION,
    freshness_seconds   DOUBLE PRECISION,             -- window end -> queryable
    dagster_run_id      TEXT,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, window_start)
);
CREATE INDEX IF NOT EXISTS streaming_performance_recorded ON streaming_performance (recorded_at DESC);
