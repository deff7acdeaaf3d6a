-- Engine of each table of a database (merges can be stopped on the MergeTree family only).
SELECT name, engine
FROM system.tables
WHERE database = {database:String} AND NOT is_temporary
ORDER BY name
