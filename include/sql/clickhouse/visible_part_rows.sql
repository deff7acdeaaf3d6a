-- Rows count() shows per part (rows a lightweight DELETE masked excluded), for some active parts;
-- $table is a quoted identifier.
SELECT _part, count()
FROM $table
WHERE _part IN {parts:Array(String)}
GROUP BY _part
