{{ config(partitioned=true) }}
-- The shopping funnel of the day: how many active users viewed, searched, filled a cart and bought.
WITH per_user AS (
    SELECT
        user_id,
        max(event_type = 'PAGE_VIEW') AS viewed,
        max(event_type = 'SEARCH') AS searched,
        max(event_type = 'ADD_TO_CART') AS carted,
        max(event_type = 'PURCHASE') AS purchased,
        coalesce(sum(CASE WHEN event_type = 'PURCHASE' THEN amount END), 0) AS spent
    FROM {{ source('silver', 'user_events') }}
    WHERE event_date = {{ partition_date }}
    GROUP BY user_id
)
SELECT
    {{ partition_date }} AS event_date,
    count(*) AS active_users,
    count_if(viewed) AS viewers,
    count_if(searched) AS searchers,
    count_if(carted) AS cart_users,
    count_if(purchased) AS buyers,
    CAST(sum(spent) AS DECIMAL(20, 2)) AS revenue,
    count_if(purchased) / greatest(count_if(viewed), 1) AS view_to_purchase,
    count_if(purchased) / greatest(count_if(carted), 1) AS cart_to_purchase
FROM per_user
