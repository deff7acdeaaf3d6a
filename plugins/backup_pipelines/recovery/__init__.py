"""Zero-loss recovery across pipelines: a ClickHouse point plus the Kafka events since its offsets.

``plan`` (what a catch-up re-feeds, where each range comes from, coverage holes), ``feed``
(archived and topic ranges into a replay topic), ``service`` (plan and run a catch-up after a
restore), ``effective`` (the effective RPO the monitor shows), ``operators`` (the restore DAG's task).
"""
