{{ config(partitioned=true) }}
-- Sessions of the day: how many, how long, how many events, how many ended in a purchase.
WITH sessions AS (
    SELECT
        session_id,
        count(*) AS events,
        (max(unix_micros(event_time)) - min(unix_micros(event_time))) / 1e6 AS duration_s,
        max(event_type = 'PURCHASE') AS purchased
    FROM {{ source('silver', 'user_events') }}
    WHERE event_date = {{ partition_date }} AND session_id IS NOT NULL
    GROUP BY session_id
)
SELECT
    {{ partition_date }} AS event_date,
    count(*) AS sessions,
    avg(events) AS avg_events_per_session,
    avg(duration_s) AS avg_duration_s,
    percentile(duration_s, 0.5) AS median_duration_s,
    avg(CASE WHEN purchased THEN 1.0 ELSE 0.0 END) AS purchase_rate
FROM sessions
