-- Swap a restored table with the live one atomically (Atomic databases); the old data stays in staging.
EXCHANGE TABLES $source AND $target$on_cluster
