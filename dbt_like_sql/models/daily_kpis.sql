{{ config(partitioned=true, publish={'table': 'daily_kpis', 'key': ['event_date']}) }}
-- One row per day for the dashboard and downstream consumers (published to PostgreSQL daily_kpis).
SELECT
    f.event_date,
    a.events,
    f.active_users,
    s.sessions,
    f.buyers,
    f.revenue,
    f.view_to_purchase,
    s.median_duration_s AS median_session_s
FROM {{ ref('conversion_funnel') }} AS f
JOIN (
    SELECT event_date, sum(events) AS events
    FROM {{ ref('daily_activity') }}
    WHERE event_date = {{ partition_date }}
    GROUP BY event_date
) AS a ON a.event_date = f.event_date
JOIN {{ ref('session_stats') }} AS s ON s.event_date = f.event_date
WHERE f.event_date = {{ partition_date }}
