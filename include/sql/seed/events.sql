-- The demo's analytics table: one row per user event, partitioned by day like production.
CREATE TABLE IF NOT EXISTS analytics.events
(
    event_time DateTime64(3, 'UTC'),
    user_id UInt64,
    session_id String,
    event_type LowCardinality(String),
    page String,
    revenue Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (event_type, user_id, event_time)
