"""``make demo``: start the embedded stack, seed sample data, run every pipeline and a DR drill.

Runs every DAG with ``dag.test()`` in this one process, because chDB opens its data directory in
one process at a time and the sample data is seeded through the same process (docs/architecture.md).
"""

from __future__ import annotations

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
from backup_pipelines.dev.stack import EmbeddedStack

log = logging.getLogger("backup_pipelines.dev.demo")
DEMO_DIR = Path(".demo")


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
    end = now.replace(minute=0, second=0, microsecond=0)
    return [DemoRun(end - timedelta(hours=h)) for h in (2, 1, 0)]


def _daily(now: datetime) -> list[DemoRun]:
    # The last 03:00 tick at or before now: its interval is the day the EMR outputs are seeded for.
    tick = now.replace(hour=3, minute=0, second=0, microsecond=0)
    return [DemoRun(tick if tick <= now else tick - timedelta(days=1))]


def _weekly(now: datetime) -> list[DemoRun]:
    monday = (now - timedelta(days=now.weekday())).replace(hour=4, minute=0, second=0, microsecond=0)
    if monday > now:
        monday -= timedelta(days=7)
    return [DemoRun(monday)]


def _monthly(now: datetime) -> list[DemoRun]:
    tick = now.replace(day=1, hour=5, minute=0, second=0, microsecond=0)
    if tick > now:
        tick = (tick - timedelta(days=1)).replace(day=1)
    return [DemoRun(tick)]


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


def _drill_report_text() -> str | None:
    """The table of the newest drill report the drill wrote to the backup bucket, or None."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.drill.render import render_text_table
    from backup_pipelines.drill.results import DrillReport

    cfg = load_config()
    client = Catalog.from_config(cfg).s3.client
    listing = client.list_objects_v2(Bucket=cfg.storage.backup_bucket, Prefix=cfg.dr_drill.report_prefix)
    keys = sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith("/report.json"))
    if not keys:
        return None
    body = client.get_object(Bucket=cfg.storage.backup_bucket, Key=keys[-1])["Body"].read()
    report = DrillReport.model_validate_json(body)
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"s3://{cfg.storage.backup_bucket}/{keys[-1]}: {verdict}", render_text_table(report)]
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
    ("backup_rpo_monitor", _monitor),
]


def _seed(stack: EmbeddedStack, now: datetime) -> dict[str, Any]:
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.sample_data import seed_clickhouse, seed_emr_outputs, seed_kafka

    cfg = load_config()
    stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
    source_buckets = sorted({job.source[5:].split("/", 1)[0] for job in cfg.emr_archive.jobs})
    stack.create_buckets(*source_buckets)

    client = ClickHouseHook(clickhouse_conn_id=cfg.connections.clickhouse).get_client()
    rows = seed_clickhouse(client, start=now - timedelta(days=40), end=now - timedelta(hours=3), rows=50_000)

    week_end = _weekly(now)[0].logical_date
    assert week_end is not None
    week_start = week_end - timedelta(days=7)
    messages = 0
    for topic in cfg.kafka_archive.topics:
        messages += seed_kafka(
            stack.kafka_bootstrap, topic.name, start=week_start - timedelta(days=1), end=now, messages=6_000
        )

    s3 = stack.s3_client()
    daily_end = _daily(now)[0].logical_date
    assert daily_end is not None
    day = (daily_end - timedelta(days=1)).date()
    files = 0
    for job in cfg.emr_archive.jobs:
        bucket, _, prefix = job.source[5:].partition("/")
        job_prefix = prefix.split("/", 1)[0]
        files += len(seed_emr_outputs(s3, bucket=bucket, job=job_prefix, day=day))
    return {"clickhouse rows": rows, "kafka messages": messages, "emr files": files}


def _run_dags(now: datetime) -> list[tuple[str, str, str, float]]:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            log.error("DAG file %s failed to import: %s", path, error)
        raise SystemExit("demo: DAG import errors (see above)")
    results = []
    for dag_id, plan in DEMO_PLAN:
        dag = bag.dags.get(dag_id)
        if dag is None:
            results.append((dag_id, "-", "missing from dags/", 0.0))
            continue
        for run in plan(now):
            started = time.monotonic()
            kwargs: dict[str, Any] = {"run_conf": run.conf}
            if run.logical_date is not None:
                kwargs["logical_date"] = run.logical_date
            log.info("demo: running %s %s", dag_id, run.logical_date or "(manual)")
            dag_run = run_dag_in_process(dag, **kwargs)
            state = str(getattr(dag_run, "state", "unknown"))
            label = run.logical_date.isoformat() if run.logical_date else "manual"
            results.append((dag_id, label, state, time.monotonic() - started))
    return results


def _print_table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))


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

    cfg = load_config()
    catalog = Catalog.from_config(cfg)
    rows = []
    for kind, dataset, objectives in cfg.datasets():
        listing = catalog.list_points(kind, dataset)
        newest = listing.verified()[-1] if listing.verified() else None
        age = f"{(now - newest.captured_at).total_seconds() / 60:.1f} min" if newest else "none verified"
        rows.append(
            (
                kind,
                dataset,
                len(listing.points),
                len(listing.verified()),
                sum(p.size_bytes for p in listing.points),
                age,
                _duration(objectives.rpo),
            )
        )
    return rows


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    with EmbeddedStack(DEMO_DIR / "stack") as stack:
        os.environ.update(stack.env())
        os.environ.update(airflow_env(DEMO_DIR / "airflow"))
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], check=True, stdout=subprocess.DEVNULL)
        now = datetime.now(UTC)
        seeded = _seed(stack, now)
        results = _run_dags(now)
        # Gather everything before printing, so the libraries' log lines stay above the summary.
        catalog_rows = _catalog_rows(datetime.now(UTC))
        drill_table = _drill_report_text()
        mails = stack.mailbox()
        print("\n" + "=" * 78)
        print("backup-pipelines demo summary")
        print("=" * 78)
        print("seeded: " + ", ".join(f"{v} {k}" for k, v in seeded.items()))
        _print_table(
            "DAG runs",
            ("dag_id", "logical date", "state", "seconds"),
            [(d, ld, s, f"{t:.1f}") for d, ld, s, t in results],
        )
        _print_table(
            "Recovery points in the catalog",
            ("kind", "dataset", "points", "verified", "bytes", "newest verified age", "RPO"),
            catalog_rows,
        )
        print("\nDR drill report\n" + (drill_table or "(no drill report was written)"))
        print(f"\nemails received by the SMTP sink: {len(mails)}")
        for message in mails:
            print(f"  {message['Subject']}")
        print(f"\ndemo finished in {time.monotonic() - started:.0f}s; stack logs under {stack.log_dir}")
        failed = [r for r in results if r[2] not in ("success", "DagRunState.SUCCESS")]
        if failed:
            print(f"demo: {len(failed)} DAG run(s) did not succeed: {[r[0] for r in failed]}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
