-- Rows of the active parts of a database's tables (what a restore put in place).
SELECT table, rows
FROM system.parts
WHERE database = {database:String} AND active
ORDER BY table, rows
