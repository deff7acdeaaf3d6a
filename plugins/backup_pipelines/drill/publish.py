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
from backup_pipelines.drill.render import (
    day_prefix,
    render_html,
    render_index,
    render_markdown,
    report_prefix,
)
from backup_pipelines.drill.results import (
    CHECK_CLEANUP,
    CHECK_TASK,
    TABLE_HEADER,
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
        source=plan.source if plan else "primary",
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
    def from_config(cls, cfg: BackupConfig, *, source: str = "primary") -> ReportPublisher:
        """Reports go to the region the drill restored from: a DR drill writes to the DR backup bucket."""
        if source == "dr" and (replica := cfg.storage.replica) is not None:
            storage = cfg.storage.model_copy(
                update={"backup_bucket": replica.backup_bucket, "encryption": replica.encryption}
            )
            return cls(
                cfg.model_copy(update={"storage": storage}), BackupS3Hook(aws_conn_id=replica.aws_connection)
            )
        return cls(cfg, BackupS3Hook(aws_conn_id=cfg.connections.aws))

    def publish(self, report: DrillReport) -> str:
        """Write the report into a folder of its own (never over another), index the day, email, note."""
        cfg = self.cfg
        bucket = cfg.storage.backup_bucket
        prefix = self._free_folder(report)
        report.location = f"s3://{bucket}/{prefix}"
        if cfg.dr_drill.report_url:
            report.report_url = cfg.dr_drill.report_url.format(bucket=bucket, key=prefix + "report.html")
        report.run_url = _airflow_run_url(report.dag_id, report.run_id)
        for name, content, content_type in (
            ("report.json", report.to_json(), "application/json"),
            ("report.md", render_markdown(report).encode(), "text/markdown; charset=utf-8"),
            ("report.html", render_html(report).encode(), "text/html; charset=utf-8"),
        ):
            self._put(prefix + name, content, content_type)
        self._write_index(report.report_date)
        self._email(report)
        self._note(report)
        return report.location

    def _put(self, key: str, content: bytes, content_type: str) -> None:
        self.s3.put_encrypted(
            self.cfg.storage.backup_bucket,
            key,
            content,
            encryption=self.cfg.storage.encryption,
            content_type=content_type,
        )

    def _free_folder(self, report: DrillReport) -> str:
        """The run's folder; a retry of the report task gets ``-2``, ``-3``... (nothing is overwritten)."""
        base = report_prefix(self.cfg.dr_drill.report_prefix, report.report_date, report.run_id)
        folder, n = base, 1
        while self.s3.check_for_key(folder + "report.json", bucket_name=self.cfg.storage.backup_bucket):
            n += 1
            folder = f"{base[:-1]}-{n}/"
        return folder

    def _write_index(self, report_date: str) -> None:
        """``index.json`` and ``index.html`` of the day, listing every drill report written that day."""
        bucket = self.cfg.storage.backup_bucket
        day = day_prefix(self.cfg.dr_drill.report_prefix, report_date)
        entries = []
        for key in sorted(k for k in self.s3.list_keys(bucket, prefix=day) if k.endswith("/report.json")):
            found = DrillReport.model_validate_json(self.s3.read_key(key, bucket_name=bucket))
            entries.append(
                {
                    "run_id": found.run_id,
                    "passed": found.passed,
                    "started_at": found.started_at.isoformat(),
                    "folder": key.removeprefix(day).removesuffix("report.json"),
                }
            )
        entries.sort(key=lambda e: e["started_at"])
        data, page = render_index(report_date, entries)
        self._put(day + "index.json", data, "application/json")
        self._put(day + "index.html", page.encode(), "text/html; charset=utf-8")

    def _email(self, report: DrillReport) -> None:
        cfg = self.cfg
        verdict = "PASSED" if report.passed else "FAILED"
        subject = (
            f"[backup-pipelines] DR drill {report.report_date} {verdict}: {len(report.datasets)} dataset(s)"
        )
        body = notify.Body().para(f"DR drill run {report.run_id}: {verdict}.")
        if report.report_url:
            body.link("Report", report.report_url)
        body.para(f"Report files: {report.location}report.html (also report.md, report.json)")
        if report.run_url:
            body.link("Airflow run", report.run_url)
        body.grid(TABLE_HEADER, report.table_rows())
        failures = report.failures()
        if failures:
            body.heading("Failures").items(failures)
        notify.send(
            notify.Message.of(subject, body),
            smtp_conn_id=cfg.connections.smtp,
            from_email=cfg.alerts.from_email,
            to=cfg.alerts.recipients,
        )

    def _note(self, report: DrillReport) -> None:
        if not self.cfg.dr_drill.airflow_api_connection:
            return
        from backup_pipelines.drill.probes import set_run_note

        verdict = "PASSED" if report.passed else "FAILED"
        link = report.report_url or f"{report.location}report.html"
        note = f"DR drill **{verdict}**: [report]({link}) ({report.location}report.json)"
        try:
            set_run_note(
                api_conn_id=self.cfg.dr_drill.airflow_api_connection,
                dag_id=report.dag_id,
                run_id=report.run_id,
                note=note,
            )
        except Exception as exc:  # the report is written and mailed; a missing note must not hide it
            log.warning("could not set the run note through the Airflow API: %s", exc)


def _airflow_run_url(dag_id: str, run_id: str) -> str | None:
    """The run's page in the Airflow UI (``[api] base_url``), or None when no base URL is set."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    if not base.startswith("http"):
        return None
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
