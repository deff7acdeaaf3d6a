-- Drop a scratch database (structure-only verification restores).
DROP DATABASE IF EXISTS $database$on_cluster SYNC
