-- Native ClickHouse backup of a dataset's tables to S3. $tables, $on_cluster, $destination and
-- $settings are filled with quoted identifiers and fixed fragments only; every value (URLs, keys)
-- is a bound query parameter. ASYNC: the statement returns the backup id at once.
BACKUP $tables$on_cluster TO $destination SETTINGS $settings ASYNC
