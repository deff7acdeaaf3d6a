-- Stop or start background merges (and mutations) of one table; $action is STOP or START,
-- $table a quoted identifier.
SYSTEM $action MERGES$on_cluster $table
