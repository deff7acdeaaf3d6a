"""Operators of the hourly ClickHouse snapshot, its retention and the manual restore.

Each builds its service from the config, calls it and returns a typed summary; the decisions are
in ``snapshot``, ``verify``, ``retention`` and ``restore``.

- ``ClickHouseSnapshotOperator``: one dataset, one slot (the run's data interval end): full or
  incremental ``BACKUP ... ASYNC``, a deferrable wait (in-process for chDB), then the manifest, last.
- ``ClickHouseVerifyOperator``: checks the slot's backup and marks its manifest verified or failed.
- ``ClickHouseRetentionOperator``: chain-aware retention of every dataset (dry run from the form).
- ``ClickHouseRestoreOperator``: newest verified point at or before a time, whole chain, row
  counts, ``CHECK TABLE`` and the restore's wall time (RTO).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.clickhouse.params import SnapshotRunParams
from backup_pipelines.core import clock, heap, runs
from backup_pipelines.core.assets import EmitsRecoveryPoints
from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import BackupFailedError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.clickhouse.snapshot import SnapshotPlan, SnapshotService


class ClickHouseSnapshotOperator(BaseOperator):
    """Back up one dataset for the run's slot: full every ``full_every``, incremental in between.

    :param dataset: a name from ``clickhouse_snapshots.datasets``
    :param deferrable: wait for the backup in the triggerer; None (default) defers unless the
        ClickHouse connection is embedded chDB, whose backup runs inside this process.
    """

    template_fields: Sequence[str] = ("dataset",)

    def __init__(self, *, dataset: str, deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.snapshot import SnapshotPlan, SnapshotService

        heap.freeze_once()
        cfg = load_config()
        SnapshotRunParams.from_context(context)
        service = SnapshotService.from_config(cfg)
        start, end = runs.hourly_slot(context)
        step = service.prepare(self.dataset, start, end)
        if not isinstance(step, SnapshotPlan):
            return step.model_dump(mode="json")
        if self._defers(service):
            from backup_pipelines.clickhouse.triggers import ClickHouseBackupTrigger

            self.defer(
                trigger=ClickHouseBackupTrigger(
                    clickhouse_conn_id=cfg.connections.clickhouse,
                    backup_id=step.backup_id,
                    poll_interval=cfg.clickhouse_snapshots.poll_interval.total_seconds(),
                    timeout_at=time.time() + cfg.clickhouse_snapshots.backup_timeout.total_seconds(),
                ),
                method_name="execute_complete",
                kwargs={"plan": step.model_dump(mode="json")},
            )
        return service.finish(step, service.wait(step)).model_dump(mode="json")

    def _defers(self, service: SnapshotService) -> bool:
        embedded = service.engine.is_embedded
        defer = self.deferrable if self.deferrable is not None else not embedded
        if defer and embedded:
            self.log.warning("chDB runs the backup in this process: waiting here instead of deferring")
        return defer and not embedded

    def execute_complete(
        self, context: Context, event: dict[str, Any], plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        from backup_pipelines.clickhouse.backup_files import BackupStatus
        from backup_pipelines.clickhouse.snapshot import SnapshotPlan, SnapshotService

        if plan is None:
            raise BackupFailedError("the deferred snapshot lost its plan; the retry starts over")
        step: SnapshotPlan = SnapshotPlan.model_validate(plan)
        if event.get("status") != "BACKUP_CREATED":
            raise BackupFailedError(
                f"backup {event.get('id')} of {step.dataset} ended {event.get('status')}: "
                f"{event.get('error') or 'no error text'}"
            )
        status = BackupStatus(
            id=str(event["id"]),
            status=str(event["status"]),
            error="",
            num_files=int(event.get("num_files", 0)),
            total_size=int(event.get("total_size", 0)),
        )
        return SnapshotService.from_config(load_config()).finish(step, status).model_dump(mode="json")


class ClickHouseVerifyOperator(EmitsRecoveryPoints, BaseOperator):
    """Verify the slot's backup (status, file listing, row counts, structure-only restore)."""

    template_fields: Sequence[str] = ("dataset",)

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.verify import VerifyService

        heap.freeze_once()
        service = VerifyService.from_config(load_config())
        summary = service.verify_slot(self.dataset, runs.hourly_slot(context)[1])
        self.emit_recovery_point_of(context, "clickhouse_snapshot", self.dataset, summary.recovery_point_id)
        return summary.model_dump(mode="json")


class ClickHouseRetentionOperator(BaseOperator):
    """Chain-aware retention of every configured ClickHouse dataset (``retention_dry_run`` previews)."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.backups import BackupStore
        from backup_pipelines.clickhouse.retention import apply_retention
        from backup_pipelines.core.catalog import Catalog

        cfg = load_config()
        params = SnapshotRunParams.from_context(context)
        catalog = Catalog.from_config(cfg)
        catalog.s3.check_bucket(cfg.storage.backup_bucket, role="backup bucket")
        report = apply_retention(
            cfg, catalog, BackupStore(catalog.s3), now=clock.utcnow(), dry_run=params.retention_dry_run
        )
        return report.as_dict()


class ClickHouseRestoreOperator(BaseOperator):
    """Restore the newest verified point at or before the form's ``target_time`` (default: latest).

    Reads the ``clickhouse_restore`` form (``RestoreParams``); ``dry_run`` only reports the plan.
    """

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.params import RestoreParams
        from backup_pipelines.clickhouse.restore import RestoreService

        params = RestoreParams.from_context(context)
        service = RestoreService.from_config(load_config(), source=params.source)
        plan = service.plan(params)
        self.log.info("Restore plan: %s", plan.model_dump(mode="json"))
        if params.dry_run:
            self.log.info("Dry run: nothing restored")
            return {**plan.model_dump(mode="json"), "dry_run": True}
        return {
            **plan.model_dump(mode="json"),
            **service.run(plan, tables_given=bool(params.tables)),
            "source": params.source,
        }
