"""What a DR drill found: one result per dataset with its checks, and the report of the whole drill.

Pure models (pydantic) and their verdicts; rendering is in ``drill.render``, the I/O in the services.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from backup_pipelines.core.manifest import redact_secrets

PickMode = Literal["latest", "random"]
CheckStatus = Literal["passed", "failed", "not_applicable", "error"]

# Names of the checks, so the report, the runbook index and the tests agree on them.
CHECK_PICK = "pick_recovery_point"
CHECK_CHAIN = "clickhouse.chain_complete"
CHECK_RESTORE = "clickhouse.restore"
CHECK_ROW_COUNT = "clickhouse.row_count"
CHECK_CHECK_TABLE = "clickhouse.check_table"
CHECK_THAW = "archive.restore_object"
CHECK_SHA256 = "archive.sha256"
CHECK_OFFSETS = "kafka.offsets_contiguous"
CHECK_REPLAY = "kafka.replay_matches_archive"
CHECK_REPLICA_LAG = "tier1.clickhouse_replica_lag"
CHECK_REPLICATION_LAG = "tier1.kafka_replication_lag"
CHECK_RTO = "objective.rto"
CHECK_RPO = "objective.rpo"
CHECK_CLEANUP = "cleanup"
CHECK_TASK = "drill_task"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckResult(_Model):
    """One check on one object: ``object`` names what was checked (a table, S3 key or topic)."""

    name: str
    status: CheckStatus
    object: str | None = None
    detail: str = ""
    #: The recovery point the finding is about when it is not the drilled one (a chain member).
    recovery_point_id: str | None = None

    @field_validator("detail")
    @classmethod
    def _redacted(cls, value: str) -> str:
        return redact_secrets(value) or ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "not_applicable")

    def describe(self) -> str:
        target = f" on {self.object}" if self.object else ""
        return f"{self.name} {self.status}{target}" + (f": {self.detail}" if self.detail else "")


class DatasetResult(_Model):
    """What the drill did with one dataset: the point chosen, the checks, RTO and RPO achieved."""

    kind: str
    dataset: str
    recovery_point_id: str | None = None
    captured_at: datetime | None = None
    pick: PickMode = "latest"
    candidates: int = 0
    checks: list[CheckResult] = []
    rto_seconds: float | None = None
    rto_objective_seconds: float
    rpo_seconds: float | None = None
    rpo_objective_seconds: float
    rpo_before_seconds: float | None = None
    bytes_restored: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.dataset}"

    @property
    def rto_met(self) -> bool | None:
        return None if self.rto_seconds is None else self.rto_seconds <= self.rto_objective_seconds

    @property
    def rpo_met(self) -> bool:
        return self.rpo_seconds is not None and self.rpo_seconds <= self.rpo_objective_seconds

    @property
    def passed(self) -> bool:
        return (
            bool(self.checks)
            and all(c.ok for c in self.checks)
            and self.rto_met is not False
            and self.rpo_met
        )

    def table_row(self) -> tuple[str, ...]:
        captured = self.captured_at.strftime("%Y-%m-%d %H:%M:%S") if self.captured_at else "-"
        return (
            self.key,
            f"{self.recovery_point_id or '-'} ({self.pick})",
            captured,
            _checks_cell(self.checks),
            "-" if self.rto_seconds is None else f"{self.rto_seconds:.1f}",
            fmt_hours(self.rto_objective_seconds),
            fmt_hours(self.rpo_seconds),
            fmt_hours(self.rpo_objective_seconds),
            f"{self.bytes_restored:,}",
            _sampled(self.checks),
            "PASS" if self.passed else "FAIL",
        )

    def failures(self) -> list[str]:
        problems = [f"{self.key}: {c.describe()}" for c in self.checks if not c.ok]
        if self.rto_met is False:
            problems.append(
                f"{self.key}: {CHECK_RTO} missed: restore took {fmt_seconds(self.rto_seconds)}, "
                f"objective {fmt_seconds(self.rto_objective_seconds)}"
            )
        if not self.rpo_met:
            achieved = (
                "no verified recovery point" if self.rpo_seconds is None else fmt_seconds(self.rpo_seconds)
            )
            problems.append(
                f"{self.key}: {CHECK_RPO} missed: newest verified point age {achieved}, "
                f"objective {fmt_seconds(self.rpo_objective_seconds)}"
            )
        return problems


def _sampled(checks: list[CheckResult]) -> str:
    """What a sample covered: Kafka partitions and objects, from the objects the checks name."""
    objects = sorted({c.object for c in checks if c.name == CHECK_SHA256 and c.object})
    if not objects:
        return "-"
    partitions = sorted({int(m.group(1)) for o in objects if (m := re.search(r"partition=(\d+)", o))})
    counted = f"{len(objects)} object{'s' if len(objects) != 1 else ''}"
    if partitions:
        return f"partitions {', '.join(map(str, partitions))} ({counted})"
    return counted


def _checks_cell(checks: list[CheckResult]) -> str:
    """``passed/applicable``; checks of nothing configured are counted apart, failures named."""
    applicable = [c for c in checks if c.status != "not_applicable"]
    passed = sum(1 for c in applicable if c.status == "passed")
    cell = f"{passed}/{len(applicable)}"
    skipped = len(checks) - len(applicable)
    if skipped:
        cell += f", {skipped} not applicable"
    failed = [c.name for c in checks if not c.ok]
    return cell + (f" failed: {', '.join(failed)}" if failed else "")


class Freshness(_Model):
    """The RPO check the drill starts with (``RecoveryPointFreshnessSensor``): recorded, not a gate.

    The verdict of the drill is the RPO measured *after* it verified points (``objective.rpo``).
    """

    ok: bool | None = None
    detail: str = ""

    def describe(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[self.ok]
        return f"RPO before the drill: {verdict}" + (f" ({self.detail})" if self.detail else "")


class DrillReport(_Model):
    """The whole drill: one row per dataset, the Tier 1 checks and the scratch clean-up."""

    dag_id: str
    run_id: str
    drill_id: str
    report_date: str
    started_at: datetime
    finished_at: datetime
    pick: PickMode
    seed: int
    random_window_seconds: float
    source: str = "primary"  # the region restored from: primary, or dr (storage.replica)
    datasets: list[DatasetResult] = []
    tier1: list[CheckResult] = []
    cleanup: list[CheckResult] = []
    freshness_before: Freshness | None = None
    location: str | None = None
    report_url: str | None = None  # the report as a link a person can open (dr_drill.report_url)
    run_url: str | None = None  # the drill's run in the Airflow UI

    @property
    def passed(self) -> bool:
        return (
            bool(self.datasets)
            and all(d.passed for d in self.datasets)
            and all(c.ok for c in (*self.tier1, *self.cleanup))
        )

    def failures(self) -> list[str]:
        problems = [p for d in self.datasets for p in d.failures()]
        problems += [f"tier1: {c.describe()}" for c in self.tier1 if not c.ok]
        problems += [f"cleanup: {c.describe()}" for c in self.cleanup if not c.ok]
        if not self.datasets:
            problems.append("no dataset was drilled (nothing configured?)")
        return problems

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    def table_rows(self) -> list[tuple[str, ...]]:
        """One row per dataset, as shown in Markdown, HTML, the email and ``make demo``."""
        return [d.table_row() for d in self.datasets]


TABLE_HEADER = (
    "dataset",
    "recovery point (pick)",
    "captured at (UTC)",
    "checks passed",
    "restore (s)",
    "RTO (h)",
    "point age (h)",
    "RPO (h)",
    "bytes restored",
    "sampled",
    "result",
)


def fmt_hours(seconds: float | None) -> str:
    """Hours with two decimals at most (``0.5``, ``192``, ``0.01``); ``-`` when unknown."""
    return "-" if seconds is None else f"{seconds / 3600:.2f}".rstrip("0").rstrip(".")


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
