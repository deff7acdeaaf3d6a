"""The DR drill: which recovery point to test, what was checked, and the report auditors read.

Pure logic, no I/O: picking a recovery point (latest, or random within a window with a recorded
seed, the way AWS Backup restore testing does), the per-dataset result with its checks and the
achieved RTO/RPO against the objectives, and the report rendered as JSON, Markdown and HTML.
The operators in ``operators/dr_drill.py`` do the I/O and fill these models in.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from backup_pipelines.core.catalog import Manifest, redact_secrets

PickMode = Literal["latest", "random"]
CheckStatus = Literal["passed", "failed", "not_applicable", "error"]
REPORT_FILES = ("report.json", "report.md", "report.html")

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
    datasets: list[DatasetResult] = []
    tier1: list[CheckResult] = []
    cleanup: list[CheckResult] = []
    freshness_before: Freshness | None = None
    location: str | None = None

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
        rows: list[tuple[str, ...]] = []
        for d in self.datasets:
            passed = sum(1 for c in d.checks if c.status == "passed")
            failed = [c.name for c in d.checks if not c.ok]
            rows.append(
                (
                    d.key,
                    f"{d.recovery_point_id or '-'} ({d.pick})",
                    f"{passed}/{len(d.checks)}" + (f" failed: {', '.join(failed)}" if failed else ""),
                    f"{fmt_seconds(d.rto_seconds)} / {fmt_seconds(d.rto_objective_seconds)}",
                    f"{fmt_seconds(d.rpo_seconds)} / {fmt_seconds(d.rpo_objective_seconds)}",
                    f"{d.bytes_restored:,}",
                    "PASS" if d.passed else "FAIL",
                )
            )
        return rows


TABLE_HEADER = (
    "dataset",
    "recovery point (pick)",
    "checks passed",
    "RTO / objective",
    "RPO / objective",
    "bytes restored",
    "result",
)


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


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: DrillReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"# DR drill {report.report_date}: {verdict}",
        "",
        f"- run: `{report.run_id}` (DAG `{report.dag_id}`), drill id `{report.drill_id}`",
        f"- started {report.started_at.isoformat()}, finished {report.finished_at.isoformat()}",
        f"- recovery point pick: **{report.pick}**"
        + (f" within {fmt_seconds(report.random_window_seconds)}" if report.pick == "random" else "")
        + f", seed {report.seed}",
        f"- {_md_cell(report.freshness_before.describe())}" if report.freshness_before else "",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in report.table_rows()]
    failures = report.failures()
    if failures:
        lines += ["", "## Failures", ""] + [f"- {_md_cell(f)}" for f in failures]
    lines += ["", "## Checks", ""]
    for d in report.datasets:
        lines.append(f"### {d.key}")
        lines += [f"- {c.status.upper()}: {_md_cell(c.describe())}" for c in d.checks] or ["- (no check ran)"]
        lines.append("")
    for title, checks in (("Tier 1", report.tier1), ("Clean-up", report.cleanup)):
        lines.append(f"### {title}")
        lines += [f"- {c.status.upper()}: {_md_cell(c.describe())}" for c in checks] or ["- (none)"]
        lines.append("")
    return "\n".join(lines)


def render_html(report: DrillReport) -> str:
    esc = html.escape
    verdict = "PASSED" if report.passed else "FAILED"
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADER)
    body = "".join(
        f'<tr class="{"pass" if row[-1] == "PASS" else "fail"}">'
        + "".join(f"<td>{esc(c)}</td>" for c in row)
        + "</tr>"
        for row in report.table_rows()
    )
    failures = "".join(f"<li>{esc(f)}</li>" for f in report.failures())
    sections = []
    for d in report.datasets:
        items = "".join(f"<li>{esc(c.status.upper())}: {esc(c.describe())}</li>" for c in d.checks)
        sections.append(f"<h3>{esc(d.key)}</h3><ul>{items}</ul>")
    for title, checks in (("Tier 1", report.tier1), ("Clean-up", report.cleanup)):
        items = "".join(f"<li>{esc(c.status.upper())}: {esc(c.describe())}</li>" for c in checks)
        sections.append(f"<h3>{title}</h3><ul>{items or '<li>(none)</li>'}</ul>")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>DR drill {esc(report.report_date)}: {verdict}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px}tr.fail{background:#fdd}tr.pass{background:#dfd}</style>"
        f"</head><body><h1>DR drill {esc(report.report_date)}: {verdict}</h1>"
        f"<p>run <code>{esc(report.run_id)}</code> of <code>{esc(report.dag_id)}</code>; "
        f"pick <b>{esc(report.pick)}</b>, seed {report.seed}; "
        f"{esc(report.started_at.isoformat())} to {esc(report.finished_at.isoformat())}</p>"
        + (f"<p>{esc(report.freshness_before.describe())}</p>" if report.freshness_before else "")
        + f"<table><tr>{head}</tr>{body}</table>"
        + (f"<h2>Failures</h2><ul>{failures}</ul>" if failures else "")
        + "<h2>Checks</h2>"
        + "".join(sections)
        + "</body></html>"
    )


def render_text_table(report: DrillReport) -> str:
    """A plain-text table for terminals and the summary email."""
    rows: list[tuple[str, ...]] = [TABLE_HEADER, *report.table_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def report_prefix(prefix: str, report_date: str) -> str:
    """``reports/dr-drill/<date>/``: where one day's drill report lives in the backup bucket."""
    return f"{prefix}{report_date}/"


# -- picking a recovery point ------------------------------------------------------------------------
def seed_for(run_id: str, explicit: int | None = None) -> int:
    """The seed of a run: the explicit one, or one derived from the run id (a retry picks the same)."""
    if explicit is not None:
        return explicit
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)


def drill_id_for(run_id: str) -> str:
    """A short, identifier-safe name for this run's scratch database and topics."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9]+", "_", run_id.lower()).strip("_")[:24]
    return f"{stem}_{digest}"


def pick_recovery_point(
    points: Sequence[Manifest],
    *,
    mode: PickMode,
    window: timedelta,
    now: datetime,
    rng: random.Random,
) -> tuple[Manifest | None, int, str]:
    """(point, number of candidates, why): the latest, or a random one captured within ``window``.

    Points that already failed verification are not candidates: the drill tests what a restore
    would use. ``points`` are oldest first, as ``Catalog.list_points`` returns them.
    """
    usable = [p for p in points if p.verification.state != "failed"]
    if mode == "latest":
        if not usable:
            return None, 0, "no recovery point that has not failed verification"
        return usable[-1], len(usable), "the newest recovery point"
    since = now - window
    candidates = [p for p in usable if p.captured_at >= since]
    if not candidates:
        return None, 0, f"no recovery point captured within {fmt_seconds(window.total_seconds())}"
    return rng.choice(candidates), len(candidates), f"random among {len(candidates)} within the window"


def sample(items: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """A reproducible sample of ``count`` items (all of them when there are fewer), in input order."""
    if len(items) <= count:
        return list(items)
    chosen = set(rng.sample(range(len(items)), count))
    return [item for i, item in enumerate(items) if i in chosen]
