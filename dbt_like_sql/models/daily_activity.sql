{{ config(partitioned=true) }}
-- Events, users and sessions per event type and country, per day.
SELECT
    event_date,
    event_type,
    coalesce(country, '??') AS country,
    count(*) AS events,
    count(DISTINCT user_id) AS users,
    count(DISTINCT session_id) AS sessions
FROM {{ source('silver', 'user_events') }}
WHERE event_date = {{ partition_date }}
GROUP BY event_date, event_type, coalesce(country, '??')
