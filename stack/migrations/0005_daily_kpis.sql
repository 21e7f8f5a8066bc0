-- Published by the SQL model dbt_like_sql/models/daily_kpis.sql: one row per event day, upserted on
-- event_date each time the day is refreshed.
CREATE TABLE IF NOT EXISTS daily_kpis (
    event_date          DATE PRIMARY KEY,
    events              BIGINT           NOT NULL,
    active_users        BIGINT           NOT NULL,
    sessions            BIGINT           NOT NULL,
    buyers              BIGINT           NOT NULL,
    revenue             NUMERIC(20, 2)   NOT NULL,
    view_to_purchase    DOUBLE PRECISION NOT NULL,
    median_session_s    DOUBLE PRECISION,
    updated_at          TIMESTAMPTZ      NOT NULL DEFAULT now()
);
