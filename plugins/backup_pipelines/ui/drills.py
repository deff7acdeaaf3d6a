"""The DR drill reports the Backups page shows, newest first: read where the drill wrote them
(``dr_drill.report_prefix`` in the backup bucket, one ``report.json`` per run)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from backup_pipelines.drill.results import DrillReport

if TYPE_CHECKING:
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "report.html")


class DrillOutcome(BaseModel):
    """One dataset's row of one drill: verdict, RTO against objective, where the report is."""

    report_date: str
    run_id: str
    dag_id: str
    started_at: str
    recovery_point_id: str | None
    passed: bool
    rto_seconds: float | None
    rto_objective_seconds: float
    rto_met: bool | None
    failures: list[str]
    report_key: str  # the report's folder (``.../report.html`` beside it)


class DrillHistory:
    """Drill reports in S3, newest first (by the time S3 stored them)."""

    def __init__(self, s3: BackupS3Hook, *, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def report_folders(self) -> list[str]:
        found = [o for o in self.s3.iter_objects(self.bucket, self.prefix) if o.key.endswith("/report.json")]
        found.sort(key=lambda o: (o.last_modified is not None, o.last_modified, o.key), reverse=True)
        return [o.key.removesuffix("report.json") for o in found]

    def read(self, folder: str) -> DrillReport | None:
        found = self.s3.get_bytes(self.bucket, folder + "report.json")
        if found is None:
            return None
        try:
            return DrillReport.model_validate_json(found[0])
        except ValidationError as exc:
            log.warning("Backups page: skipping unreadable drill report s3://%s/%sreport.json: %s",
                        self.bucket, folder, exc.errors()[0]["msg"])  # fmt: skip
            return None

    def outcomes(self, *, limit: int) -> dict[str, list[DrillOutcome]]:
        """Per ``kind/dataset``: its rows of the newest ``limit`` drills, newest first."""
        history: dict[str, list[DrillOutcome]] = {}
        for folder in self.report_folders()[:limit]:
            report = self.read(folder)
            if report is None:
                continue
            for d in report.datasets:
                history.setdefault(d.key, []).append(
                    DrillOutcome(
                        report_date=report.report_date,
                        run_id=report.run_id,
                        dag_id=report.dag_id,
                        started_at=report.started_at.isoformat(),
                        recovery_point_id=d.recovery_point_id,
                        passed=d.passed,
                        rto_seconds=d.rto_seconds,
                        rto_objective_seconds=d.rto_objective_seconds,
                        rto_met=d.rto_met,
                        failures=d.failures(),
                        report_key=folder,
                    )
                )
        return history

    def is_report(self, key: str) -> bool:
        """Only the drill's own report files are served (no other key of the bucket)."""
        return key.startswith(self.prefix) and ".." not in key and key.rsplit("/", 1)[-1] in REPORT_FILES

    def file(self, key: str) -> bytes | None:
        if not self.is_report(key):
            return None
        found = self.s3.get_bytes(self.bucket, key)
        return found[0] if found else None
