-- Stored rows of every part system.parts still knows (active or merged away), and whether a
-- lightweight DELETE masks some of them (``_row_exists``): name -> rows and mask are immutable.
SELECT table, name, rows, has_lightweight_delete, active
FROM system.parts
WHERE database = {database:String} AND table IN {tables:Array(String)}
