"""Operators of the ``dr_drill`` DAG: plan, drill each dataset, Tier 1, clean up, report.

Each builds its service from the config and the plan (XCom), calls it and returns a typed result.
Checks that find bad data do not raise: they are recorded in the dataset's result so the report
names the object and the check; the ``report`` task writes the report first and then fails the
run. A check that could not run raises ``DrillInfrastructureError`` (retried) after leaving its
finding in XCom ``drill_result`` for the report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core import clock, runs
from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import DrillInfrastructureError, VerificationError
from backup_pipelines.core.regions import aws_conn_id

if TYPE_CHECKING:
    from airflow.sdk import Context

# XCom key of a dataset result whose checks could not run (the task raised; the report reads it).
ERROR_XCOM_KEY = "drill_result"


class DrillPlanOperator(BaseOperator):
    """Pick the recovery point each dataset's drill tests, and the archive objects it samples."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.regions import region_catalog
        from backup_pipelines.drill.params import DrillParams
        from backup_pipelines.drill.plan import plan_drill

        cfg = load_config()
        params = DrillParams.from_context(context)
        now = clock.utcnow()
        due = context["dag_run"].run_after or now
        plan = plan_drill(
            cfg, region_catalog(cfg, params.source), params, run_id=runs.run_id(context), now=now, due=due
        )
        return plan.model_dump(mode="json")


class _DatasetDrillOperator(BaseOperator):
    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, kind: str, dataset: str, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.dataset = dataset
        self.plan = plan

    def _plan(self) -> Any:
        from backup_pipelines.drill.plan import DrillPlan

        return DrillPlan.model_validate(self.plan)

    def _leave_finding(self, context: Context, error: DrillInfrastructureError) -> None:
        """Leave the finding for the report (the point's verification state is not touched)."""
        if error.result is not None:
            self.log.error("%s/%s: ERROR: %s", self.kind, self.dataset, error)
            context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=error.result)


class ClickHouseDrillOperator(_DatasetDrillOperator):
    """Restore the chain into ``drill_<run>_<dataset>``, row counts, ``CHECK TABLE``; time it."""

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.drill.clickhouse import ClickHouseDrill

        drill = ClickHouseDrill.from_config(load_config(), self._plan())
        try:
            return drill.run(self.kind, self.dataset).model_dump(mode="json")
        except DrillInfrastructureError as exc:
            self._leave_finding(context, exc)
            raise


class ArchiveDrillOperator(_DatasetDrillOperator):
    """Archives: thaw a sample (deferring on ``S3RestoreTrigger``), check SHA-256 and offsets."""

    def execute(self, context: Context) -> dict[str, Any] | None:
        from backup_pipelines.drill.archives import ArchiveDrill

        cfg = load_config()
        plan = self._plan()
        entry = plan.entry(self.kind, self.dataset)
        drill = ArchiveDrill.from_config(cfg, plan)
        if entry.recovery_point_id is None:
            return drill.pick_failed(entry).model_dump(mode="json")
        started = time.time()
        pending = drill.request_thaws(entry)
        if pending:
            from backup_pipelines.core.s3_restore import S3RestoreTrigger

            bucket, keys = next(iter(pending.items()))
            self.log.info(
                "waiting for %d restore(s) in s3://%s (tier %s)", len(keys), bucket, cfg.dr_drill.restore_tier
            )
            self.defer(
                trigger=S3RestoreTrigger(
                    bucket=bucket,
                    keys=keys,
                    aws_conn_id=aws_conn_id(cfg, plan.source),
                    poll_interval=cfg.dr_drill.restore_poll_interval.total_seconds(),
                    request_days=cfg.dr_drill.restore_days,
                    request_tier=cfg.dr_drill.restore_tier,
                ),
                method_name="resume",
                kwargs={"started": started},
                timeout=cfg.dr_drill.restore_timeout,
            )
        return self._verify(context, drill, entry, started, None)

    def resume(
        self, context: Context, event: dict[str, Any] | None = None, started: float | None = None
    ) -> Any:
        """Back from the trigger: verify what was thawed."""
        from backup_pipelines.drill.archives import ArchiveDrill

        plan = self._plan()
        drill = ArchiveDrill.from_config(load_config(), plan)
        error = None if event and event.get("status") == "success" else str((event or {}).get("message"))
        return self._verify(
            context, drill, plan.entry(self.kind, self.dataset), started or time.time(), error
        )

    def _verify(
        self, context: Context, drill: Any, entry: Any, started: float, thaw_error: str | None
    ) -> Any:
        try:
            return drill.verify(entry, started=started, thaw_error=thaw_error).model_dump(mode="json")
        except DrillInfrastructureError as exc:
            self._leave_finding(context, exc)
            raise


class Tier1CheckOperator(BaseOperator):
    """ClickHouse replica lag (``system.replicas``) and Kafka primary-to-DR replication lag."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.drill.housekeeping import tier1_checks
        from backup_pipelines.drill.probes import DrillProbes

        cfg = load_config()
        return [c.model_dump(mode="json") for c in tier1_checks(cfg, DrillProbes.from_config(cfg))]


class DrillCleanupOperator(BaseOperator):
    """Teardown: drop this run's scratch databases and topics, whatever happened before."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.drill.housekeeping import cleanup_scratch
        from backup_pipelines.drill.plan import SCRATCH_PREFIX, drill_id_for
        from backup_pipelines.drill.probes import DrillProbes

        prefix = SCRATCH_PREFIX + drill_id_for(runs.run_id(context))
        checks = cleanup_scratch(DrillProbes.from_config(load_config()), prefix)
        return [c.model_dump(mode="json") for c in checks]


class DrillReportOperator(BaseOperator):
    """Write the report (JSON, Markdown, HTML) to S3, email it, note the run; then fail on any failure."""

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        plan_task_id: str,
        dataset_task_ids: Sequence[str],
        tier1_task_id: str,
        cleanup_task_id: str,
        freshness_task_id: str | None = None,
        freshness_xcom_key: str = "freshness",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.dataset_task_ids = dataset_task_ids
        self.tier1_task_id = tier1_task_id
        self.cleanup_task_id = cleanup_task_id
        self.freshness_task_id = freshness_task_id
        self.freshness_xcom_key = freshness_xcom_key

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.drill.plan import DrillPlan
        from backup_pipelines.drill.publish import Findings, ReportPublisher, assemble_report
        from backup_pipelines.drill.render import render_text_table

        cfg = load_config()
        ti = context["ti"]
        raw_plan = ti.xcom_pull(task_ids=self.plan_task_id)
        findings = Findings(
            plan=DrillPlan.model_validate(raw_plan) if raw_plan else None,
            datasets=[
                (t, ti.xcom_pull(task_ids=t) or ti.xcom_pull(task_ids=t, key=ERROR_XCOM_KEY))
                for t in self.dataset_task_ids
            ],
            tier1=ti.xcom_pull(task_ids=self.tier1_task_id),
            cleanup=ti.xcom_pull(task_ids=self.cleanup_task_id),
            freshness=ti.xcom_pull(task_ids=self.freshness_task_id, key=self.freshness_xcom_key)
            if self.freshness_task_id
            else None,
            freshness_checked=self.freshness_task_id is not None,
        )
        now = clock.utcnow()
        report = assemble_report(
            cfg,
            findings,
            dag_id=self.dag_id,
            run_id=runs.run_id(context),
            now=now,
            due=context["dag_run"].run_after or now,
        )
        location = ReportPublisher.from_config(cfg, source=report.source).publish(report)
        self.log.info("DR drill report %s\n%s", location, render_text_table(report))
        if not report.passed:
            failures = report.failures()
            raise VerificationError(
                f"DR drill failed ({len(failures)} problem(s); report {location}): " + "; ".join(failures)
            )
        return {"location": location, "passed": True}
