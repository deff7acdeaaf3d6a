"""``make demo``: start the embedded stack, seed sample data, run every pipeline and a DR drill.

One line per step on the terminal (``dev.progress``), every log in ``.demo/logs/``, the drill's
reports copied to ``.demo/reports/``, the summary at the end; ``--verbose`` / ``V=1`` streams the logs.
Runs every DAG with ``dag.test()`` in this one process, because chDB opens its data directory in
one process at a time and the sample data is seeded through the same process (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backup_pipelines.dev.airflow import airflow_env, run_dag_in_process
from backup_pipelines.dev.progress import Progress, StepFailed
from backup_pipelines.dev.seeding import last_daily_tick, last_hours, last_monthly_tick, last_weekly_tick
from backup_pipelines.dev.stack import EmbeddedStack

log = logging.getLogger("backup_pipelines.dev.demo")
DEMO_DIR = Path(".demo")
LOG_DIR = DEMO_DIR / "logs"
REPORTS_DIR = DEMO_DIR / "reports"


@dataclass(frozen=True)
class DemoRun:
    """One ``dag.test()`` call; ``logical_date`` is None for manual DAGs (no logical date).

    With ``CronDataIntervalTimetable``, ``dag.test(logical_date=T)`` runs the data interval that
    *ends* at the last schedule tick at or before T; so T here is an interval's end.
    """

    logical_date: datetime | None
    conf: dict[str, Any] | None = None


def _hourly(now: datetime) -> list[DemoRun]:
    # The three last completed hours: a full backup and two increments.
    return [DemoRun(end) for end in last_hours(now, 3)]


def _daily(now: datetime) -> list[DemoRun]:
    return [DemoRun(last_daily_tick(now))]


def _weekly(now: datetime) -> list[DemoRun]:
    return [DemoRun(last_weekly_tick(now))]


def _monthly(now: datetime) -> list[DemoRun]:
    return [DemoRun(last_monthly_tick(now))]


def _manual(now: datetime) -> list[DemoRun]:
    return [DemoRun(None)]


def _monitor(now: datetime) -> list[DemoRun]:
    # The 15-minute interval that ended last: the monitor measures ages against the wall clock.
    return [DemoRun(now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0))]


def _restore_dry_run(now: datetime) -> list[DemoRun]:
    return [DemoRun(None, {"dataset": "analytics", "dry_run": False})]


def _replay(now: datetime) -> list[DemoRun]:
    return [DemoRun(None, {"topic": "events", "dry_run": False, "max_messages": 500})]


def _drill(now: datetime) -> list[DemoRun]:
    # A manual drill of the newest points (seed fixed so a re-run of the demo picks the same).
    return [DemoRun(None, {"pick": "latest", "seed": 1})]


def _save_reports(target: Path) -> list[Path]:
    """Copy every drill report from the backup bucket to ``target`` (the demo's S3 stops with it)."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    cfg = load_config()
    client = Catalog.from_config(cfg).s3.client
    prefix = cfg.dr_drill.report_prefix
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=cfg.storage.backup_bucket, Prefix=prefix)
    saved = []
    for obj in (o for page in pages for o in page.get("Contents", [])):
        path = target / obj["Key"].removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=cfg.storage.backup_bucket, Key=obj["Key"])["Body"].read())
        saved.append(path)
    return saved


def _drill_report_text(saved: list[Path]) -> str | None:
    """The newest drill report's verdict, local path and table, or None."""
    from backup_pipelines.drill.render import render_text_table
    from backup_pipelines.drill.results import DrillReport

    reports = sorted((p for p in saved if p.name == "report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return None
    report = DrillReport.model_validate_json(reports[-1].read_bytes())
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"{reports[-1].with_name('report.html')}: {verdict}", render_text_table(report)]
    lines += [f"  - {problem}" for problem in report.failures()]
    return "\n".join(lines)


# The order matters: the drill and the monitor read what the pipelines before them wrote.
DEMO_PLAN: list[tuple[str, Callable[[datetime], list[DemoRun]]]] = [
    ("clickhouse_hourly_snapshot", _hourly),
    ("emr_daily_output_archive", _daily),
    ("kafka_weekly_glacier_archive", _weekly),
    ("monthly_deep_archive_export", _monthly),
    ("clickhouse_restore", _restore_dry_run),
    ("kafka_archive_replay", _replay),
    ("dr_drill", _drill),
    ("dr_replication", _monitor),  # every point and the drill report to the DR region
    ("backup_rpo_monitor", _monitor),
]


def _run_dags(progress: Progress, now: datetime) -> list[tuple[str, str, str, float]]:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    with progress.step("parse the DAG files") as step:
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        step.detail = f"{len(bag.dags)} DAGs"
    results = []
    for dag_id, plan in DEMO_PLAN:
        for run in plan(now):
            label = run.logical_date.strftime("%Y-%m-%d %H:%M") if run.logical_date else "manual"
            started = time.monotonic()
            with progress.step(f"{dag_id} {label}", keep_going=True) as step:
                kwargs: dict[str, Any] = {"run_conf": run.conf}
                if run.logical_date is not None:
                    kwargs["logical_date"] = run.logical_date
                state = str(getattr(run_dag_in_process(bag.dags[dag_id], **kwargs), "state", "unknown"))
                step.detail = state
                if state not in ("success", "DagRunState.SUCCESS"):
                    step.failed = state
            results.append(
                (dag_id, label, state if step.failed is None else "failed", time.monotonic() - started)
            )
    return results


def _table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["", title, "  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False))]
    lines += [
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows
    ]
    return lines


def _duration(delta: timedelta) -> str:
    """``1d 2h`` rather than ``1 day, 2:00:00``."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or "0s"


def _catalog_rows(now: datetime) -> list[tuple[Any, ...]]:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.regions import region_catalog

    cfg = load_config()
    catalog = Catalog.from_config(cfg)
    dr = region_catalog(cfg, "dr") if cfg.storage.replica else None
    rows = []
    for kind, dataset, objectives in cfg.datasets():
        listing = catalog.list_points(kind, dataset)
        newest = listing.verified()[-1] if listing.verified() else None
        age = f"{(now - newest.captured_at).total_seconds() / 60:.1f} min" if newest else "none verified"
        in_dr = dr.latest_verified(kind, dataset) if dr else None
        dr_age = f"{(now - in_dr.captured_at).total_seconds() / 60:.1f} min" if in_dr else "none in DR"
        total = sum(p.size_bytes for p in listing.points)
        rows.append(
            (
                kind,
                dataset,
                len(listing.points),
                len(listing.verified()),
                total,
                age,
                _duration(objectives.rpo),
                dr_age if dr else "no replica",
                _duration(objectives.effective_dr_rpo),
            )
        )
    return rows


def _summary(
    stack: EmbeddedStack, seeded: dict[str, Any], results: list[tuple[str, str, str, float]]
) -> list[str]:
    from backup_pipelines.dev.seeding import describe

    saved = _save_reports(REPORTS_DIR)
    lines = ["", "backup-pipelines demo summary", "seeded: " + describe(seeded)]
    lines += _table(
        "Recovery points in the catalog",
        (
            "kind",
            "dataset",
            "points",
            "verified",
            "bytes",
            "newest verified age",
            "RPO",
            "DR newest",
            "DR RPO",
        ),
        _catalog_rows(datetime.now(UTC)),
    )
    lines += ["", "DR drill report (copied from the demo's S3 to " + str(REPORTS_DIR) + "/)"]
    lines.append(_drill_report_text(saved) or "(no drill report was written)")
    lines += [
        "",
        "Backups page: `make airflow`, log in, then Backups in the navigation (/plugin/backups): "
        "every dataset against its RPO, its chains and drills, and what the backups cost",
    ]
    mails = stack.mailbox()
    lines += ["", f"emails received by the SMTP sink: {len(mails)} (in {DEMO_DIR / 'mail'}/)"]
    lines += [f"  {message['Subject']}" for message in mails]
    failed = [r for r in results if r[2] == "failed"]
    if failed:
        lines.append(
            f"\n{len(failed)} DAG run(s) failed: " + ", ".join(f"{d} {label}" for d, label, *_ in failed)
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description="Run every pipeline and a DR drill.")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream every log line (also V=1)")
    args = parser.parse_args(argv)
    verbose = args.verbose or os.environ.get("V", "") not in ("", "0")
    started = time.monotonic()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    progress = Progress(LOG_DIR / "demo.log", verbose=verbose)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    progress.print(
        f"backup-pipelines demo: every pipeline and a DR drill on the embedded stack; logs in {LOG_DIR}/"
    )
    try:
        with progress.step("start the embedded stack") as step:
            stack = EmbeddedStack(DEMO_DIR).start()
            step.detail = "moto S3, Tansu Kafka, SMTP sink, chDB"
        try:
            return _demo(progress, stack, started)
        finally:
            with progress.step("stop the embedded stack", keep_going=True):
                stack.stop()
    except StepFailed:
        progress.print(f"demo stopped: a step failed (see above); logs in {LOG_DIR}/")
        return 1


def _demo(progress: Progress, stack: EmbeddedStack, started: float) -> int:
    from backup_pipelines.dev.seeding import describe, seed_demo_data

    os.environ.update(stack.env())
    os.environ.update(airflow_env(DEMO_DIR / "airflow"))
    with progress.step("migrate the Airflow DB (SQLite, dag.test)"):
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], check=True)
    now = datetime.now(UTC)
    with progress.step("seed the sample data") as step:
        seeded = seed_demo_data(stack, now)
        step.detail = describe(seeded)
    results = _run_dags(progress, now)
    with progress.step("zero data loss: a restore with replay_since_capture", keep_going=True) as step:
        from backup_pipelines.dev.ingest import demo_zero_loss

        step.detail = demo_zero_loss(stack, now, DEMO_DIR)
    with progress.step("gather the summary") as step:
        lines = _summary(stack, seeded, results)
    for line in lines:
        progress.print(line)
    progress.print(
        f"\ndemo finished in {time.monotonic() - started:.0f}s; logs in {LOG_DIR}/, reports in {REPORTS_DIR}/"
    )
    return 1 if progress.failures else 0


if __name__ == "__main__":
    sys.exit(main())
