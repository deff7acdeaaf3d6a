-- Restore tables of a backup (and, through its base_backup, the whole chain) into a target
-- database. Same filling rules as backup.sql.
RESTORE $tables$on_cluster FROM $source$settings
