-- Messages on security-alerts that are not valid alerts: kept with their Kafka coordinates and the
-- reason, never silently dropped. The key makes a redelivered message a no-op.

CREATE TABLE IF NOT EXISTS security_alerts_rejected (
    topic               TEXT        NOT NULL,
    kafka_partition     INTEGER     NOT NULL,
    kafka_offset        BIGINT      NOT NULL,
    reason              TEXT        NOT NULL,
    raw_value           BYTEA,
    rejected_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
