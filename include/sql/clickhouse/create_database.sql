-- Target or scratch database of a restore; $database is a quoted identifier.
CREATE DATABASE IF NOT EXISTS $database$on_cluster
