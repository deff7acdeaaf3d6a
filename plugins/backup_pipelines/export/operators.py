"""Operator for one configured export of one month (one task per export: ``export_<name>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core.assets import EmitsRecoveryPoints
from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.export.params import ExportParams

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeepArchiveExportOperator(EmitsRecoveryPoints, BaseOperator):
    """Export a month of one configured query as Parquet to S3 Deep Archive and catalog it.

    The month is the form's ``month`` (``YYYY-MM``) when given, else the calendar month the run's
    data interval starts in, else (a manual run without a logical date) the last complete month.
    """

    template_fields = ("export_name",)

    def __init__(self, *, export_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export_name = export_name

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.runs import run_after
        from backup_pipelines.export.engine import ExportEngine
        from backup_pipelines.export.month import Month
        from backup_pipelines.export.monthly import MonthlyExport

        cfg = load_config()
        params = ExportParams.from_context(context)
        export = next((e for e in cfg.deep_archive_exports.exports if e.name == self.export_name), None)
        if export is None:
            known = [e.name for e in cfg.deep_archive_exports.exports]
            raise ConfigError(
                f"deep_archive_exports.exports has no export named {self.export_name!r} ({known})"
            )
        start = context.get("data_interval_start")
        if params.month:
            month = Month.parse(params.month)
        elif start is not None:
            month = Month.of(start)
        else:
            month = Month.previous(run_after(context))
        engine = ExportEngine(clickhouse_conn_id=cfg.connections.clickhouse, aws_conn_id=cfg.connections.aws)
        ti = context["ti"]
        producer = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
        result = MonthlyExport(engine, Catalog.from_config(cfg), cfg, export).run(
            month, producer=producer, allow_fewer_rows=params.allow_fewer_rows
        )
        manifest = result.manifest
        self.emit_recovery_point(context, manifest)
        return {
            "export": export.name,
            "month": month.label,
            "rows": manifest.row_counts["rows"],
            "files": len(manifest.objects),
            "bytes": manifest.size_bytes,
            "empty": manifest.details["empty"],
            "location": manifest.location,
            "replaced_files": len(result.removed_keys),
        }
