"""Benchmark: the DAG's snapshot task vs. the bare ``BACKUP`` statement, and incremental backup size.

Starts its own embedded stack (chDB + moto S3) in a temporary directory, fills one MergeTree table
with N rows (merges stopped, so parts stay as inserted), then in the same run:

1. times the bare ``BACKUP TABLE ... TO S3(...)`` (full) and ``ClickHouseSnapshotOperator.execute``
   (a full backup of the same table, plus everything the task adds: catalog reads, table
   resolution, waiting on ``system.backups``, reading the ``.backup`` listing, row counts per part
   and the manifest write), alternating, ``--repeat`` times each; medians are compared;
2. inserts ``--added`` rows as new parts, takes the incremental snapshot with the task, and
   compares the bytes it stored in S3 (data + its ``.backup`` listing) with the bytes on disk of
   the parts added since the base.

Targets (issue 3): overhead under 10% + 1 s at 1M+ rows; increment bytes under 1.1x the new parts.
Writes its section of docs/benchmarks.md.

    .venv/bin/python bench/clickhouse_snapshot.py [--rows 2000000] [--added 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _report import write_section  # bench/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
SECTION = "clickhouse_snapshot"
DB = "bench_snapshot"


def _config(path: Path, datasets: list[str]) -> None:
    import yaml

    cfg = yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
    cfg["deadlines"] = {}
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-bench/",
            "s3_credentials": "connection",
            "datasets": [{"name": name, "database": DB, "tables": ["events"]} for name in datasets],
        }
    )
    path.write_text(yaml.safe_dump(cfg))
    os.environ["BACKUP_PIPELINES_CONFIG"] = str(path)


def _bytes_under(s3: Any, bucket: str, prefix: str) -> int:
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(int(o["Size"]) for o in page.get("Contents", []))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--added", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    workdir = Path(tempfile.mkdtemp(prefix="bench-clickhouse-"))
    from backup_pipelines.dev.airflow import airflow_env
    from backup_pipelines.dev.stack import EmbeddedStack

    os.environ.update(airflow_env(workdir / "airflow"))
    stack = EmbeddedStack(workdir / "stack").start()
    try:
        os.environ.update(stack.env())
        return _run(stack, workdir, args)
    finally:
        stack.stop()


def _run(stack: Any, workdir: Path, args: argparse.Namespace) -> int:
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    from backup_pipelines.clickhouse.engine import ClickHouseEngine
    from backup_pipelines.clickhouse.operators import ClickHouseSnapshotOperator, ClickHouseVerifyOperator
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    datasets = [f"bench_{n}" for n in range(args.repeat)]
    _config(workdir / "backup.yaml", datasets)
    cfg = load_config()
    bucket = cfg.storage.backup_bucket
    stack.create_buckets(bucket, cfg.storage.archive_bucket)
    s3 = stack.s3_client()
    client = ClickHouseHook().get_client()
    client.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    client.command(
        f"CREATE TABLE {DB}.events (id UInt64, at DateTime, user_id UInt32, kind LowCardinality(String), "
        "payload String) ENGINE = MergeTree ORDER BY (kind, id)"
    )
    client.command(f"SYSTEM STOP MERGES {DB}.events")
    fill = (
        f"INSERT INTO {DB}.events SELECT number + {{first:UInt64}}, "
        "toDateTime('2026-11-01') + number % 86400, number % 50000, "
        "['view','click','buy'][number % 3 + 1], concat('p-', toString(number % 1000)) "
        "FROM numbers({count:UInt64})"
    )
    client.query(fill, parameters={"first": 0, "count": args.rows})
    hook = ClickHouseEngine(credentials="connection")
    creds = hook.s3_credentials()
    assert creds is not None
    slot = datetime(2026, 11, 23, 14, tzinfo=UTC)
    context: Any = {"data_interval_start": slot - timedelta(hours=1), "data_interval_end": slot}

    bare, task = [], []
    for n, name in enumerate(datasets):
        url = f"{stack.s3_endpoint}/{bucket}/clickhouse-bench/bare-{n}/"
        started = time.monotonic()
        client.query(
            f"BACKUP TABLE {DB}.events TO S3({{u:String}}, {{k:String}}, {{s:String}})",
            parameters={"u": url, "k": creds.access_key_id, "s": creds.secret_access_key},
        )
        bare.append(time.monotonic() - started)
        started = time.monotonic()
        ClickHouseSnapshotOperator(task_id="snapshot", dataset=name).execute(context)
        task.append(time.monotonic() - started)
        print(f"run {n + 1}: bare BACKUP {bare[-1]:.2f}s, snapshot task {task[-1]:.2f}s", flush=True)
    bare_s, task_s = statistics.median(bare), statistics.median(task)
    overhead = task_s - bare_s
    budget = 0.10 * bare_s + 1.0
    full_bytes = _bytes_under(s3, bucket, f"clickhouse-bench/{datasets[0]}/")

    # Incremental: new parts only, compared with what the increment stored.
    ClickHouseVerifyOperator(task_id="verify", dataset=datasets[0]).execute(context)
    parts_before = {
        r[0]
        for r in client.query(f"SELECT name FROM system.parts WHERE database = '{DB}' AND active").result_rows
    }
    client.query(fill, parameters={"first": args.rows, "count": args.added})
    new_parts = client.query(
        f"SELECT name, bytes_on_disk FROM system.parts WHERE database = '{DB}' AND active"
    ).result_rows
    added_bytes = sum(int(b) for name, b in new_parts if name not in parts_before)
    next_slot = slot + timedelta(hours=1)
    inc_context: Any = {"data_interval_start": slot, "data_interval_end": next_slot}
    summary = ClickHouseSnapshotOperator(task_id="snapshot", dataset=datasets[0]).execute(inc_context)
    assert summary["base"] == "20261123T1400Z", summary
    inc_prefix = f"clickhouse-bench/{datasets[0]}/20261123T1500Z/"
    inc_bytes = _bytes_under(s3, bucket, inc_prefix)
    listing_bytes = s3.head_object(Bucket=bucket, Key=inc_prefix + ".backup")["ContentLength"]
    manifest = Catalog.from_config(cfg).read("clickhouse_snapshot", datasets[0], "20261123T1500Z")
    ratio = inc_bytes / added_bytes
    ratio_data = (inc_bytes - listing_bytes) / added_bytes

    today = datetime.now(UTC).date().isoformat()
    command = f"bench/clickhouse_snapshot.py --rows {args.rows} --added {args.added} --repeat {args.repeat}"
    within = "yes" if overhead <= budget else "NO"
    runs = ", ".join(f"{b:.2f} / {t:.2f}" for b, t in zip(bare, task, strict=True))
    overhead_text = f"{overhead:+.2f} s ({overhead / bare_s:+.0%})"
    text = f"""
## ClickHouse hourly snapshot: task overhead and incremental size (`bench/clickhouse_snapshot.py`)

`.venv/bin/python {command}`,
{today}, {os.cpu_count()} CPUs ({platform.machine()}), chDB {manifest.software.get("clickhouse")} in this
process writing to a local moto S3 server (embedded stack). One MergeTree table, merges stopped.
Bare `BACKUP` and the `snapshot` task alternate on the same table, each a full backup to its own
prefix; medians of {args.repeat}.

| rows | bare BACKUP (median) | snapshot task (median) | overhead | budget (10% + 1 s) | within target |
|---:|---:|---:|---:|---:|:---:|
| {args.rows:,} | {bare_s:.2f} s | {task_s:.2f} s | {overhead_text} | {budget:.2f} s | {within} |

All runs (bare / task, seconds): {runs}.
Full backup stored: {full_bytes / 1e6:.1f} MB.

Incremental backup after inserting {args.added:,} rows as new parts:

| new parts' bytes | increment in S3 | of which `.backup` | ratio (target < 1.1x) | without `.backup` |
|---:|---:|---:|---:|---:|
| {added_bytes:,} | {inc_bytes:,} | {listing_bytes:,} | {ratio:.3f}x | {ratio_data:.3f}x |

The `.backup` listing names every file of the whole logical backup (base files included), so its
size grows with the number of parts in the table, not with the increment.
The task time is `ClickHouseSnapshotOperator.execute` in the bench process (catalog reads, table
resolution, backup, wait, `.backup` listing, part row counts, manifest write); it excludes Airflow's
task start-up, which is the same for any task. Not measured here: a ClickHouse server (the
deferrable path, where the wait happens in the triggerer), real S3 latency, tables with thousands
of parts.
"""
    write_section(SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
