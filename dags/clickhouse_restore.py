"""
### Restore a ClickHouse dataset from its snapshots (manual, Params form)

Scripted recovery from the incremental backups of `clickhouse_hourly_snapshot`:

1. `restore`: picks a **verified** recovery point of `dataset`: the one named by
   `recovery_point_id` (e.g. `20261127T1100Z`), else the newest captured at or before
   `target_time` (ISO 8601), else the latest. The plan and the log state the point, its capture
   time and why, list the dataset's verified points newest first (ids to pick from), and say so
   when `target_time` lies inside the slot of a later point (typing `12:00Z` for the point
   `...T1200Z`, captured at 12:03, restores the 11:00 point). It restores the point's whole
   chain into `target_database` (default: a new `restore_<timestamp>` database) with merges of
   the restored tables stopped while `count()` is compared with the rows the table showed at
   capture and the restored parts with the backed-up parts, runs `CHECK TABLE`, and logs the
   restore's wall time (RTO) next to the objective. `tables` limits it to some tables.
   The target must not be the live database of any configured dataset nor hold any table,
   unless `confirm_overwrite` is that database's name: the chain then goes to a staging database
   and the tables are swapped in (`EXCHANGE TABLES`), the replaced ones staying in staging.
   System databases are refused; names allow letters, digits and `_` (not starting with a digit).
   `dry_run` only logs the plan (point and why, chain, tables, target).

2. `replay_since_capture` (datasets with `ingest`, skipped unless the flag is set): re-feeds the
   Kafka events since the offsets the restored point recorded, up to the live end (the topic, and
   the weekly archives for what retention deleted); reports the window, records per partition and
   the ingestion's remaining lag. With `dry_run`: only the plan.

Step by step (dropped table, corrupted table, whole database to a point in time):
docs/runbooks/clickhouse-restore.md.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.clickhouse.operators import ClickHouseRestoreOperator
from backup_pipelines.core.config import load_config
from backup_pipelines.core.params import choice_param, flag_param, list_param, text_param
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.recovery.operators import ReplaySinceCaptureOperator

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
            "recovery_point_id": text_param(
                "Recovery point id",
                "Restore this verified point, e.g. 20261127T1100Z (a dry run lists the dataset's verified "
                "points, newest first, with their capture times). Empty: pick by target time.",
                pattern=r"^\d{8}T\d{4}Z$",
            ),
            "target_time": text_param(
                "Target time",
                "ISO 8601, e.g. 2026-11-23T14:00:00Z: the newest verified point captured at or before it "
                "(a point's capture time is a few minutes after its slot: give its id to restore a slot). "
                "Empty (and no id): the latest verified point.",
            ),
            "target_database": text_param(
                "Target database",
                "Database to restore into: letters, digits and _, not starting with a digit; no system "
                "database. Empty: a new restore_<timestamp> database.",
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
            ),
            "confirm_overwrite": text_param(
                "Confirm overwriting this database",
                "Type the target database's name to restore into a live or non-empty database: the chain "
                "is restored into a staging database and the tables are swapped in (the old ones stay "
                "in staging). Empty: only an empty or new database not used by any dataset.",
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
            ),
            "source": choice_param(
                "Source region",
                "primary: the primary region's catalog and backups. dr: the DR region's copies "
                "(storage.replica), e.g. while the primary region is down.",
                ["primary", "dr"],
                default="primary",
            ),
            "dry_run": flag_param("Dry run", "Only log the plan (point, chain, tables, target)."),
            "replay_since_capture": flag_param(
                "Replay the events since the point's capture",
                "Datasets with ingest: after the restore, re-feed the Kafka events since the offsets the "
                "point recorded (topic, and archives for what retention deleted) to the live end. "
                "With dry run: only the plan.",
            ),
        },
        cfg=cfg,
    )
):
    restore = ClickHouseRestoreOperator(task_id="restore", pool=cfg.clickhouse_snapshots.pool)
    restore >> ReplaySinceCaptureOperator(task_id="replay_since_capture")
