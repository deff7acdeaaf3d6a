-- Rows per part, for the parts a backup holds (parts are immutable, so name -> rows is stable).
SELECT table, name, rows
FROM system.parts
WHERE database = {database:String} AND table IN {tables:Array(String)}
