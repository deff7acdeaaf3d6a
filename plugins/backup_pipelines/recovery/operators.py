"""The ``clickhouse_restore`` DAG's catch-up task: replay the ingest events since the restored point.

It runs after the ``restore`` task and does nothing (skipped) unless the form's
``replay_since_capture`` is set; with ``dry_run`` it shows the plan and changes nothing. Archive
files in a cold storage class are restored first (the wait is deferred to the triggerer); the
catch-up is planned again after the wait, which can outlast the topic's oldest records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import ObjectNotRestoredError

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReplaySinceCaptureOperator(BaseOperator):
    """Re-feed the events since the restored point's ingest offsets (``recovery.service``).

    :param restore_task_id: the task whose summary names the restored point and target database
    """

    template_fields: Sequence[str] = ("restore_task_id",)

    def __init__(
        self,
        *,
        restore_task_id: str = "restore",
        poll_interval: float = 300.0,
        timeout_hours: float = 48.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.restore_task_id = restore_task_id
        self.poll_interval = poll_interval
        self.timeout_hours = timeout_hours

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.params import RestoreParams

        params = RestoreParams.from_context(context)
        if not params.replay_since_capture:
            raise AirflowSkipException("replay_since_capture is not set: the restore is the snapshot alone")
        return self._catch_up(context, dry_run=params.dry_run)

    def _catch_up(self, context: Context, *, dry_run: bool) -> dict[str, Any]:
        """Plan; with archive files that cannot be read yet, request their restores and defer;
        otherwise re-feed."""
        from backup_pipelines.core.s3_restore import S3RestoreTrigger
        from backup_pipelines.recovery.service import CatchUpService

        restored = context["ti"].xcom_pull(task_ids=self.restore_task_id) or {}
        cfg = load_config()
        service = CatchUpService.from_config(cfg)
        plan = service.plan(restored, dry_run=dry_run or bool(restored.get("dry_run")))
        if plan.dry_run:
            self.log.info("Dry run: nothing replayed, no offset changed")
            return plan.summary()
        pending = service.cold_files(plan)
        if pending:
            self.log.info("Waiting for %d archive file restore(s) in the triggerer", len(pending))
            self.defer(
                trigger=S3RestoreTrigger(
                    bucket=cfg.storage.archive_bucket,
                    keys=pending,
                    aws_conn_id=cfg.connections.aws,
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                timeout=timedelta(hours=self.timeout_hours),
            )
        return service.run(plan).model_dump(mode="json")

    def execute_complete(
        self, context: Context, event: dict[str, Any], plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Back from the wait: planned again, since during it (hours, for a Bulk restore) retention
        deleted more of the topic (that part now comes from the archives: files not read yet are
        restored first, deferring again) and the ingestion moved on. ``plan``: the kwargs of a
        task deferred by an earlier version, not used."""
        if event.get("status") != "success":
            raise ObjectNotRestoredError(f"restore of the archive files failed: {event.get('message')}")
        return self._catch_up(context, dry_run=False)
