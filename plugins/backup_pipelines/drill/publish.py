"""The drill's report: assembled from what every task found (or did not), written to S3 as JSON,
Markdown and HTML, emailed to ``alerts.recipients``, and noted on the Airflow run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backup_pipelines.core import notify
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.drill.checks import objectives
from backup_pipelines.drill.plan import DrillPlan, drill_id_for, seed_for
from backup_pipelines.drill.render import render_html, render_markdown, render_text_table, report_prefix
from backup_pipelines.drill.results import (
    CHECK_CLEANUP,
    CHECK_TASK,
    CheckResult,
    DatasetResult,
    DrillReport,
    Freshness,
)

log = logging.getLogger(__name__)


@dataclass
class Findings:
    """What the report task gathered from the run's tasks (None: the task left nothing)."""

    plan: DrillPlan | None
    datasets: list[tuple[str, dict[str, Any] | None]]  # (task id, result) in config order
    tier1: list[dict[str, Any]] | None
    cleanup: list[dict[str, Any]] | None
    freshness: dict[str, Any] | None
    freshness_checked: bool


def _missing_result(
    cfg: BackupConfig, plan: DrillPlan | None, kind: str, name: str, task_id: str
) -> DatasetResult:
    """The row of a dataset whose drill task left no result (it failed or was skipped)."""
    rto, rpo = objectives(cfg, kind, name)
    planned = plan.datasets.get(f"{kind}/{name}") if plan else None
    return DatasetResult(
        kind=kind,
        dataset=name,
        recovery_point_id=planned.recovery_point_id if planned else None,
        pick=plan.pick if plan else cfg.dr_drill.pick,
        checks=[
            CheckResult(
                name=CHECK_TASK,
                status="error",
                object=task_id,
                detail="the drill task ended without a result (failed or skipped); see its log",
            )
        ],
        rto_objective_seconds=rto,
        rpo_objective_seconds=rpo,
    )


def assemble_report(
    cfg: BackupConfig, findings: Findings, *, dag_id: str, run_id: str, now: datetime, due: datetime
) -> DrillReport:
    """The report of the run; a task that left no result is an ``error`` row naming the task."""
    plan = findings.plan
    datasets = []
    for (kind, name, _), (task_id, raw) in zip(cfg.datasets(), findings.datasets, strict=True):
        if raw:
            datasets.append(DatasetResult.model_validate(raw))
        else:
            datasets.append(_missing_result(cfg, plan, kind, name, task_id))
    tier1 = [CheckResult.model_validate(c) for c in findings.tier1 or []]
    if findings.tier1 is None:
        tier1.append(CheckResult(name=CHECK_TASK, status="error", object="tier1_checks", detail="no result"))
    cleanup = [CheckResult.model_validate(c) for c in findings.cleanup or []]
    if not cleanup:
        cleanup.append(
            CheckResult(name=CHECK_CLEANUP, status="error", object="cleanup_scratch", detail="no result")
        )
    freshness = None
    if findings.freshness_checked:
        found = findings.freshness
        freshness = (
            Freshness(ok=bool(found.get("ok")), detail=str(found.get("detail") or ""))
            if found
            else Freshness(ok=None, detail="the freshness check did not run or failed; see its log")
        )
        ages = (found or {}).get("ages") or {}
        for d in datasets:
            d.rpo_before_seconds = ages.get(d.key)
    return DrillReport(
        dag_id=dag_id,
        run_id=run_id,
        drill_id=plan.drill_id if plan else drill_id_for(run_id),
        report_date=plan.report_date if plan else due.date().isoformat(),
        started_at=plan.started_at if plan else now,
        finished_at=now,
        pick=plan.pick if plan else cfg.dr_drill.pick,
        seed=plan.seed if plan else seed_for(run_id),
        random_window_seconds=plan.window_seconds if plan else cfg.dr_drill.random_window.total_seconds(),
        datasets=datasets,
        tier1=tier1,
        cleanup=cleanup,
        freshness_before=freshness,
    )


class ReportPublisher:
    """Writes the report's three files, emails the summary, notes the Airflow run."""

    def __init__(self, cfg: BackupConfig, s3: BackupS3Hook) -> None:
        self.cfg = cfg
        self.s3 = s3

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> ReportPublisher:
        return cls(cfg, BackupS3Hook(aws_conn_id=cfg.connections.aws))

    def publish(self, report: DrillReport) -> str:
        cfg = self.cfg
        bucket = cfg.storage.backup_bucket
        prefix = report_prefix(cfg.dr_drill.report_prefix, report.report_date)
        location = f"s3://{bucket}/{prefix}"
        report.location = location
        html = render_html(report)
        for name, content, content_type in (
            ("report.json", report.to_json(), "application/json"),
            ("report.md", render_markdown(report).encode(), "text/markdown; charset=utf-8"),
            ("report.html", html.encode(), "text/html; charset=utf-8"),
        ):
            self.s3.put_encrypted(
                bucket, prefix + name, content, encryption=cfg.storage.encryption, content_type=content_type
            )
        verdict = "PASSED" if report.passed else "FAILED"
        subject = (
            f"[backup-pipelines] DR drill {report.report_date} {verdict}: {len(report.datasets)} dataset(s)"
        )
        body = (
            notify.Body()
            .para(f"Full report: {location}report.html")
            .raw(
                text=render_text_table(report),
                html_fragment=html.split("<body>", 1)[-1].rsplit("</body>", 1)[0],
            )
        )
        notify.send(
            notify.Message.of(subject, body),
            smtp_conn_id=cfg.connections.smtp,
            from_email=cfg.alerts.from_email,
            to=cfg.alerts.recipients,
        )
        if cfg.dr_drill.airflow_api_connection:
            from backup_pipelines.drill.probes import set_run_note

            note = f"DR drill **{verdict}**: report {location}report.html ({location}report.json)"
            try:
                set_run_note(
                    api_conn_id=cfg.dr_drill.airflow_api_connection,
                    dag_id=report.dag_id,
                    run_id=report.run_id,
                    note=note,
                )
            except Exception as exc:  # the report is written and mailed; a missing note must not hide it
                log.warning("could not set the run note through the Airflow API: %s", exc)
        return location
