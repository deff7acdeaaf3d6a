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

from airflow.sdk import DAG, Param

from backup_pipelines.clickhouse.operators import ClickHouseRestoreOperator
from backup_pipelines.core.config import load_config
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
            "dataset": Param(
                datasets[0] if datasets else "",
                type="string",
                minLength=1,
                title="Dataset",
                description=f"A clickhouse_snapshots dataset (configured: {', '.join(datasets) or 'none'}).",
            ),
            "tables": Param(
                [], type="array", items={"type": "string"}, title="Tables", description="Empty: all tables."
            ),
            "target_time": Param(
                "",
                type="string",
                title="Target time",
                description="ISO 8601; the newest verified point captured at or before it. Empty: latest.",
            ),
            "target_database": Param(
                "", type="string", title="Target database", description="Empty: a new restore_<timestamp>."
            ),
            "confirm_overwrite": Param(
                False, type="boolean", title="Allow restoring over the live database (tables are swapped)"
            ),
            "dry_run": Param(False, type="boolean", title="Dry run (show the plan only)"),
        },
        cfg=cfg,
    )
):
    ClickHouseRestoreOperator(task_id="restore", pool=cfg.clickhouse_snapshots.pool)
