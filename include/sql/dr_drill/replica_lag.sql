-- Tier 1: how far each replicated table lags behind its replicas (ADR: < 60 s). Empty without replicas.
SELECT database, table, absolute_delay
FROM system.replicas
ORDER BY absolute_delay DESC, database, table
