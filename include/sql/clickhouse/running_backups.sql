-- Backups of one slot still running on the server (a retried task re-attaches to them).
SELECT id
FROM system.backups
WHERE startsWith(id, {prefix:String}) AND status = 'CREATING_BACKUP'
ORDER BY start_time DESC
