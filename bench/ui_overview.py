"""Benchmark: the Backups page's overview (and its dataset and cost pages) with 10,000 recovery points.

Starts its own moto S3 server on 127.0.0.1 and writes the example config's six datasets' points:
8,000 hourly ClickHouse points (a full every 24), 500 per EMR job, 500 Kafka archives and 250 per
export, plus two drill reports. Then, each ``--repeat`` times, each on a new service:

- **catalog read** (the baseline): ``Catalog.list_points`` and the chain states of every dataset, one
  after the other: what any reader of the whole catalog pays;
- **overview**: ``BackupsService.overview()`` rendered to HTML (what ``GET /backups/`` does);
- **dataset page** of the 8,000-point ClickHouse dataset, and the **cost page**.

Reports medians, S3 requests per page, and the overview's ratio to the catalog read. Writes its section
of docs/benchmarks.md.

    .venv/bin/python bench/ui_overview.py [--points 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _moto import moto_s3  # bench/ is the script's own folder
from _report import write_section

SECTION = "ui_overview"
BUCKET = "bench-backups"
TARGET_SECONDS = 1.0
FIRST = "overview, first request"


def _config() -> Any:
    import yaml

    from backup_pipelines import PROJECT_ROOT
    from backup_pipelines.core.config import BackupConfig

    raw = yaml.safe_load((PROJECT_ROOT / "include" / "config" / "backup.yaml").read_text())
    raw["connections"]["aws"] = "aws_bench"
    raw["storage"]["backup_bucket"] = BUCKET
    return BackupConfig.model_validate(raw)


def _points(cfg: Any, total: int, now: datetime) -> list[Any]:
    from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification

    shares = {
        "clickhouse_snapshot": 0.8,
        "emr_output": 0.05,
        "kafka_archive": 0.05,
        "deep_archive_export": 0.025,
    }
    step = {
        "clickhouse_snapshot": 1,
        "emr_output": 24,
        "kafka_archive": 24 * 7,
        "deep_archive_export": 24 * 30,
    }
    klass = {
        "clickhouse_snapshot": "STANDARD",
        "kafka_archive": "GLACIER",
        "deep_archive_export": "DEEP_ARCHIVE",
    }
    made: list[Any] = []
    for kind, name, _ in cfg.datasets():
        count = int(total * shares[kind])
        for i in range(count):
            when = now - timedelta(hours=step[kind] * (count - i))
            base = None
            if kind == "clickhouse_snapshot" and i % 24:
                base = made[-1].recovery_point_id
            made.append(
                Manifest(
                    kind=kind,
                    dataset=name,
                    recovery_point_id=when.strftime("%Y%m%dT%H%MZ"),
                    captured_at=when,
                    location=f"s3://{BUCKET}/{kind}/{name}/{i}/",
                    storage_class=klass.get(kind, "STANDARD"),
                    objects=[
                        ObjectEntry(key=f"{kind}/{name}/{i}/part-{j}", size=1_000_000 + j) for j in range(3)
                    ],
                    base=base,
                    verification=Verification(
                        state="failed" if i == count - 100 else "verified", verified_at=when
                    ),
                )
            )
    return made


def _seed(cfg: Any, points: list[Any]) -> None:
    """Manifests through the catalog's own store, then each dataset's index built once (when the
    catalog has one); a catalog without an index gets ``Catalog.write``."""
    from backup_pipelines.core.catalog import Catalog

    catalog = Catalog.from_config(cfg)
    store = getattr(catalog, "manifests", None)
    write = store.write if store is not None and hasattr(catalog, "rebuild_index") else catalog.write
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, points))
    if hasattr(catalog, "rebuild_index"):
        for kind, name, _ in cfg.datasets():
            catalog.rebuild_index(kind, name)
    for day in ("2026-11-14", "2026-11-21"):
        report: dict[str, Any] = {"dag_id": "dr_drill", "run_id": f"scheduled__{day}", "drill_id": "d",
                  "report_date": day,
                  "started_at": f"{day}T06:00:00Z", "finished_at": f"{day}T06:20:00Z", "pick": "latest",
                  "seed": 1, "random_window_seconds": 0, "datasets": []}  # fmt: skip
        key = f"{cfg.dr_drill.report_prefix}{day}/scheduled/report.json"
        catalog.s3.client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(report).encode())


def _timed(cfg: Any, action: Callable[[Any], Any], hook: Any = None) -> tuple[float, int]:
    """Seconds and S3 requests of one action on a new service: on the app's kept S3 hook (``hook``, as
    every request after the first), or on a new one (a new boto3 client: the app's first request)."""
    from backup_pipelines.ui.service import BackupsService

    started = time.perf_counter()
    service = BackupsService.from_config(cfg, s3=hook)
    calls: Counter[str] = Counter()
    service.catalog.s3.client.meta.events.register(
        "after-call.s3", lambda model, **_: calls.update([model.name])
    )
    action(service)
    return time.perf_counter() - started, sum(calls.values())


def measure(cfg: Any, repeat: int) -> dict[str, list[tuple[float, int]]]:
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.ui import pages

    def catalog_read(service: Any) -> None:
        for kind, name, _ in cfg.datasets():
            service.catalog.list_points(kind, name).states()

    def overview(service: Any) -> None:
        pages.overview(service.overview(), base="/backups", airflow="")

    def dataset(service: Any) -> None:
        page = service.dataset("clickhouse_snapshot", "analytics")
        pages.dataset(page, base="/backups", airflow="", now=service.now)

    def cost(service: Any) -> None:
        pages.costs(service.costs(), base="/backups", airflow="")

    actions = {"catalog read": catalog_read, "overview": overview, "dataset page": dataset, "cost page": cost}
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in [*actions, FIRST]}
    _timed(cfg, overview)  # warm-up: imports, templates
    hook = BackupS3Hook(aws_conn_id=cfg.connections.aws)
    for _ in range(repeat):
        for name, action in actions.items():
            results[name].append(_timed(cfg, action, hook))
        results[FIRST].append(_timed(cfg, overview))
    return results


def report(results: dict[str, list[tuple[float, int]]], args: argparse.Namespace, indexed: bool) -> str:
    median = {name: statistics.median(s for s, _ in runs) for name, runs in results.items()}
    lines = [
        "## Backups page: overview with 10,000 recovery points (`bench/ui_overview.py`)",
        "",
        f"`.venv/bin/python bench/ui_overview.py --points {args.points} --repeat {args.repeat}`, "
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs ({platform.machine()}), a local moto S3 "
        f"server; the example config's six datasets, {args.points:,} points (80% of them hourly ClickHouse "
        f"points in chains of 24). Catalog {'with' if indexed else 'without'} its per-dataset index. Every "
        "run: a new service on the app's kept S3 client (nothing else cached between runs); "
        f"'{FIRST}': on a new client too. Medians; HTML rendering included.",
        "",
        "| page | seconds (median) | all runs | S3 requests | vs catalog read |",
        "|---|---:|---|---:|---:|",
    ]
    for name, runs in results.items():
        ratio = median[name] / median["catalog read"] if median["catalog read"] else 0
        each = ", ".join(f"{s:.3f}" for s, _ in runs)
        lines.append(f"| {name} | {median[name]:.3f} | {each} | {runs[0][1]} | {ratio:.2f}x |")
    verdict = "met" if median["overview"] < TARGET_SECONDS else "NOT met"
    lines += ["", f"Overview target < {TARGET_SECONDS:.0f} s: **{verdict}** ({median['overview']:.3f} s)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    from backup_pipelines.dev.airflow import airflow_env

    os.environ.update(airflow_env(home))
    with moto_s3() as endpoint:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        cfg = _config()
        started = time.perf_counter()
        _seed(cfg, _points(cfg, args.points, datetime.now(UTC)))
        print(f"seeded {args.points:,} points in {time.perf_counter() - started:.0f}s", flush=True)
        from backup_pipelines.core.catalog import Catalog

        indexed = hasattr(Catalog, "rebuild_index")
        text = report(measure(cfg, args.repeat), args, indexed)
    print(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
