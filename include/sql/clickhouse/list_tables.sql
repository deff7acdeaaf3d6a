-- Tables of one database a dataset's patterns are matched against.
SELECT name
FROM system.tables
WHERE database = {database:String} AND NOT is_temporary
ORDER BY name
