-- Status of one backup or restore operation, by id.
SELECT id, status, error, num_files, total_size, uncompressed_size, start_time, end_time
FROM system.backups
WHERE id = {id:String}
