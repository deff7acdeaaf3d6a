-- Native ClickHouse backup of a dataset's tables to S3. $tables, $on_cluster, $destination and
-- $settings are filled with quoted identifiers and fixed fragments only; every value (URLs, keys)
-- is a bound query parameter. $mode is ASYNC (the statement returns the backup id at once; a server)
-- or empty (the statement returns when the backup has ended: chDB, whose backup runs in-process).
BACKUP $tables$on_cluster TO $destination SETTINGS $settings$mode
