"""
### Restore a ClickHouse dataset from its snapshots (manual, Params form)

Scripted recovery from the incremental backups of `clickhouse_hourly_snapshot`:

1. `restore`: picks the newest **verified** recovery point of `dataset` captured at or before
   `target_time` (ISO 8601; empty = latest), restores its whole chain (full backup plus
   increments) into `target_database`, checks every table's row count against the manifest,
   runs `CHECK TABLE`, and logs and returns the restore's wall time (RTO) next to the objective.
   `tables` limits it to some tables (empty = all). `target_database` defaults to a new
   `restore_<timestamp>` database. Restoring into the live database needs `confirm_overwrite`:
   the chain is restored into a staging database first and the tables are then swapped in
   (`EXCHANGE TABLES`), so the replaced tables stay in the staging database.
   `dry_run` only logs the plan (point, chain, tables, target).

Step by step (dropped table, corrupted table, whole database to a point in time):
docs/runbooks/clickhouse-restore.md.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.clickhouse.operators import ClickHouseRestoreOperator
from backup_pipelines.core.config import load_config
from backup_pipelines.core.params import choice_param, flag_param, list_param, text_param
from backup_pipelines.dagkit import dag_kwargs

cfg = load_config()
datasets = [d.name for d in cfg.clickhouse_snapshots.datasets]

with DAG(
    **dag_kwargs(
        "clickhouse_restore",
        schedule=None,
        doc_md=__doc__ or "",
        tags=["clickhouse", "recovery", "restore"],
        params={
            "dataset": choice_param(
                "Dataset",
                "The clickhouse_snapshots dataset to restore (the configured ones).",
                datasets,
                default=datasets[0] if datasets else None,
            ),
            "tables": list_param(
                "Tables", "Table names to restore, one a line. Empty: every table of the recovery point."
            ),
            "target_time": text_param(
                "Target time",
                "ISO 8601, e.g. 2026-11-23T14:00:00Z: the newest verified point captured at or before it. "
                "Empty: the latest verified point.",
            ),
            "target_database": text_param(
                "Target database",
                "Database to restore into. Empty: a new restore_<timestamp> database.",
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
            ),
            "confirm_overwrite": flag_param(
                "Allow restoring over the live database",
                "Needed when the target database holds the live tables: the chain is restored into a "
                "staging database and the tables are swapped in (the old ones stay in staging).",
            ),
            "dry_run": flag_param("Dry run", "Only log the plan (point, chain, tables, target)."),
        },
        cfg=cfg,
    )
):
    ClickHouseRestoreOperator(task_id="restore", pool=cfg.clickhouse_snapshots.pool)
