-- One row per user and day: activity counts by type, sessions and revenue; month bounds are bound.
SELECT
    toDate(event_time) AS day,
    user_id,
    count() AS events,
    uniqExact(session_id) AS sessions,
    countIf(event_type = 'page_view') AS page_views,
    countIf(event_type = 'purchase') AS purchases,
    sum(revenue) AS revenue
FROM analytics.events
WHERE event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {end:DateTime64(3, 'UTC')}
GROUP BY day, user_id
ORDER BY day, user_id
