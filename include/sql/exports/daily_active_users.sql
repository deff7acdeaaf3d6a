-- Daily active users and event volume for one month; {start} and {end} are bound parameters.
SELECT
    toDate(event_time) AS day,
    uniqExact(user_id) AS active_users,
    count() AS events,
    sum(revenue) AS revenue
FROM analytics.events
WHERE event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {end:DateTime64(3, 'UTC')}
GROUP BY day
ORDER BY day
