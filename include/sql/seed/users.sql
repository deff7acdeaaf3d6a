-- A small dimension table, so snapshots cover more than one table per dataset.
CREATE TABLE IF NOT EXISTS analytics.users
(
    user_id UInt64,
    country LowCardinality(String),
    signed_up_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY user_id
