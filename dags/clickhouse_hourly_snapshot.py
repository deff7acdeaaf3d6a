"""
### Hourly ClickHouse snapshots to S3 (ADR tier 2: RPO < 1 hour, 7-day retention)

Per configured dataset (`clickhouse_snapshots.datasets`: a database and table patterns), one
mapped task group per dataset:

1. `snapshot`: ClickHouse's native `BACKUP TABLE ... TO S3(...) ASYNC` to
   `s3://<backup_bucket>/<prefix><dataset>/<recovery point>/`. The recovery point id is the run's
   data interval end (`20261123T1400Z`), so retries and backfills hit the same key. A full backup
   every `full_every` (default 24 h), incremental in between with `base_backup` = the newest
   *verified* point of an intact chain: a failed or unverified backup never becomes a base.
   With a ClickHouse server the task defers to the triggerer while the backup runs server-side;
   with embedded chDB it waits in-process. The manifest (tables, parts and row counts from the
   parts the backup holds, sizes, base, captured_at, ClickHouse version) is written last.
2. `verify`: `system.backups` status, every file of the `.backup` listing stored in the chain,
   row counts, and a `RESTORE ... structure_only` into a scratch database; marks the manifest
   verified (or failed, which fails the task).

Then `retention` (once, after every dataset, even if one failed): chain-aware removal of points
older than `retention_days`, keeping `min_verified` verified chains, sweeping crashed runs'
orphans older than `orphan_grace`, reporting objects under S3 Object Lock. Trigger the DAG
with `retention_dry_run` to list what retention would delete without deleting anything.

A slot already captured is a no-op; a backfill of an old hour takes a real backup now and says so
(captured_at is the real capture time). Restores: the `clickhouse_restore` DAG and
docs/runbooks/clickhouse-restore.md.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup

from backup_pipelines.clickhouse.operators import (
    ClickHouseRetentionOperator,
    ClickHouseSnapshotOperator,
    ClickHouseVerifyOperator,
)
from backup_pipelines.core.assets import recovery_point_asset
from backup_pipelines.core.config import load_config
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.params import flag_param
from backup_pipelines.dagkit import dag_kwargs, node_id

cfg = load_config()
section = cfg.clickhouse_snapshots

with DAG(
    **dag_kwargs(
        "clickhouse_hourly_snapshot",
        schedule=section.schedule,
        doc_md=__doc__ or "",
        tags=["clickhouse", "snapshot", "tier-2"],
        params={
            "retention_dry_run": flag_param(
                "Retention dry run", "List what retention would delete, and delete nothing."
            )
        },
        cfg=cfg,
    )
):
    datasets = [d.name for d in section.datasets]
    groups = []
    for name in datasets:
        with TaskGroup(group_id=node_id("dataset", name)) as group:
            snapshot = ClickHouseSnapshotOperator(task_id="snapshot", dataset=name, pool=section.pool)
            verify = ClickHouseVerifyOperator(
                task_id="verify",
                dataset=name,
                pool=section.pool,
                outlets=[recovery_point_asset(DatasetKind.CLICKHOUSE_SNAPSHOT, name)],  # verified points
            )
            snapshot >> verify
        groups.append(group)
    retention = ClickHouseRetentionOperator(
        task_id="retention",
        pool=section.pool,
        trigger_rule="all_done",
    )
    # retention runs even when a dataset failed (it is safe by construction); this leaf keeps the
    # run's state honest: any failed snapshot or verification fails the run.
    captured = EmptyOperator(task_id="all_datasets_captured")
    for group in groups:
        group >> [retention, captured]
