-- Scratch databases of a drill (RESTORE ... AS drill_<run>.<table>), for the clean-up.
SELECT name
FROM system.databases
WHERE startsWith(name, {prefix:String})
ORDER BY name
