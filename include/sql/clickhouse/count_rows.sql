-- Row count of one table; $table is a quoted identifier.
SELECT count() FROM $table
