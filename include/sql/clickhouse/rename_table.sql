-- Move a restored table into the live database when the live table was dropped.
RENAME TABLE $source TO $target$on_cluster
