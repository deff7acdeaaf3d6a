"""
### Monthly aggregated exports to S3 Deep Archive (ADR tier 3)

One task per export in `deep_archive_exports.exports` (`export_<name>`, its asset declared as its
outlet). Each export is a SQL file under
`include/sql/` whose month bounds are bound as ClickHouse query parameters (`{start:...}`,
`{end:...}`). ClickHouse writes the result as zstd Parquet straight to S3, a file per
`max_rows_per_file` rows; the files are reconciled (Parquet footers against a `count()` of the
same query), copied server-side into `s3://<archive_bucket>/<prefix><name>/month=YYYY-MM/` in the
configured storage class (DEEP_ARCHIVE) with the configured encryption, and a manifest with the
query hash, parameters, rows, files, sizes and SHA-256s is written to the catalog.

* **Backfill** past months: `airflow backfill create --dag-id monthly_deep_archive_export
  --from-date 2026-02-01 --to-date 2026-04-02 --dry-run` (one run per month; drop `--dry-run`),
  or trigger with the `month` param (`YYYY-MM`), also for months before the DAG's start_date.
* **Re-running** a month replaces its export atomically: the old files are deleted only after
  the new manifest is written. A re-run that would archive *fewer* rows than the existing export
  fails (source data may have expired) unless `allow_fewer_rows` is set.
* An **empty month** gives an explicit empty export (manifest `details.empty = true`, no files),
  or fails when `deep_archive_exports.allow_empty` is false.

Reading an export back needs a Deep Archive restore first: docs/runbooks/deep-archive-retrieval.md.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.core.assets import recovery_point_asset
from backup_pipelines.core.config import load_config
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.params import flag_param, text_param
from backup_pipelines.dagkit import dag_kwargs, node_id
from backup_pipelines.export.operators import DeepArchiveExportOperator

cfg = load_config()
section = cfg.deep_archive_exports

with DAG(
    **dag_kwargs(
        "monthly_deep_archive_export",
        schedule=section.schedule,
        doc_md=__doc__ or "",
        tags=["deep-archive", "exports", "tier-3"],
        params={
            "month": text_param(
                "Month (YYYY-MM)",
                "Export this month instead of the run's data interval, e.g. 2026-10. Empty: the interval's.",
                pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            ),
            "allow_fewer_rows": flag_param(
                "Allow fewer rows", "Replace an archived month even if the query now returns fewer rows."
            ),
        },
        cfg=cfg,
    )
):
    for export in section.exports:
        # One task per export, its asset declared (backup://deep_archive_export/<name>), not an
        # alias: Airflow creates a declared asset when it parses this file, while an alias's asset
        # is created by its first event, and two runs recording that first event at once (a backfill
        # beside the scheduled run) fail one of them (see dags/emr_daily_output_archive.py).
        DeepArchiveExportOperator(
            task_id=node_id("export", export.name),
            export_name=export.name,
            pool=cfg.clickhouse_snapshots.pool,
            outlets=[recovery_point_asset(DatasetKind.DEEP_ARCHIVE_EXPORT, export.name)],
        )
