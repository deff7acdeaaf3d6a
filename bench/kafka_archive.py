"""Benchmark: Kafka archive throughput vs. a bare confluent-kafka consume loop, peak RSS, compression.

Usage: ``python bench/kafka_archive.py [--sizes 1000000,4000000]``

Starts the embedded stack (Tansu + moto), produces N sample events to a 1-partition topic, then,
each in its own child process (so peak RSS is per measurement):

- baseline: a bare confluent-kafka loop (``consume`` in batches, touching key, value, headers and
  timestamp) from offset 0 to the end of the partition;
- archive: ``KafkaArchiveHook.archive_partition`` with the default 256 MiB split, zstd Parquet,
  SHA-256 and upload to S3 (GLACIER) on the same broker and data.

Writes the results to the ``kafka_archive`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _report import write_section  # bench/ is the script's own folder

NAME = "kafka_archive"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_baseline(topic: str) -> dict[str, Any]:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": json.loads(os.environ["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"][
                "bootstrap.servers"
            ],
            "group.id": "bench-baseline",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    count = raw = 0
    started = time.perf_counter()
    done = False
    while not done:
        for msg in consumer.consume(10_000, timeout=1.0):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    done = True
                continue
            key, value, headers = msg.key(), msg.value(), msg.headers()
            msg.timestamp()
            count += 1
            raw += (len(key) if key else 0) + (len(value) if value else 0) + 16
            if isinstance(headers, list):
                raw += sum(len(k) + (len(v) if v else 0) for k, v in headers)
    seconds = time.perf_counter() - started
    consumer.close()
    return {"records": count, "raw_bytes": raw, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def _child_archive(topic: str) -> dict[str, Any]:
    from backup_pipelines.config import Encryption
    from backup_pipelines.hooks.kafka_archive import KafkaArchiveHook, upload_archive_file
    from backup_pipelines.hooks.s3_archive import S3ArchiveHook

    s3 = S3ArchiveHook(aws_conn_id="aws_default")
    hook = KafkaArchiveHook(group_id="bench-archive")
    now = datetime.now(UTC)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as spool:
        result, entries = hook.archive_partition(
            topic=topic,
            partition=0,
            start_offset=0,
            end_time_ms=None,
            spool_dir=spool,
            upload=lambda f: upload_archive_file(
                s3,
                f,
                topic=topic,
                bucket="bench-archive",
                prefix="kafka/",
                encryption=Encryption(),
                storage_class="GLACIER",
                object_lock=None,
                now=now,
            ),
        )
    seconds = time.perf_counter() - started
    return {
        "records": result.records,
        "raw_bytes": sum(e["raw_bytes"] for e in entries),
        "stored_bytes": sum(e["size"] for e in entries),
        "files": len(entries),
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_child(kind: str, topic: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--topic", topic],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--child")
    parser.add_argument("--topic")
    args = parser.parse_args()
    if args.child:
        fn = _child_baseline if args.child == "baseline" else _child_archive
        print(json.dumps(fn(args.topic)))
        return 0

    from backup_pipelines.embedded import EmbeddedStack, airflow_env
    from backup_pipelines.sample_data import seed_kafka

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp,
        EmbeddedStack(Path(tmp) / "stack") as stack,
    ):
        env = {**os.environ, **stack.env(), **airflow_env(Path(tmp) / "airflow")}
        stack.create_buckets("bench-archive")
        now = datetime.now(UTC)
        for n in sizes:
            topic = f"bench-{n}"
            t0 = time.perf_counter()
            seed_kafka(
                stack.kafka_bootstrap, topic, start=now - timedelta(days=7), end=now, messages=n, partitions=1
            )
            print(f"produced {n} messages in {time.perf_counter() - t0:.0f}s", flush=True)
            base = _run_child("baseline", topic, env)
            arch = _run_child("archive", topic, env)
            assert base["records"] == arch["records"] == n, (base, arch)
            rows.append((n, base, arch))
            print(json.dumps({"n": n, "baseline": base, "archive": arch}), flush=True)

    lines = [
        "## Kafka weekly archive (`bench/kafka_archive.py`)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores; embedded Tansu broker (in-memory) and",
        "moto S3 on the same machine; one partition; sample events (~90 B key+value, 2 headers).",
        "Archive = consume,",
        "zstd Parquet (row groups of 100k), SHA-256, upload to S3 as GLACIER. Each measurement in its own",
        "process (peak RSS is that process's).",
        "",
        "| messages | baseline msg/s | archive msg/s | archive MB/s (raw) | ratio (target >= 70%) "
        "| peak RSS archive | peak RSS baseline | stored / raw bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, base, arch in rows:
        b_rate = base["records"] / base["seconds"]
        a_rate = arch["records"] / arch["seconds"]
        lines.append(
            f"| {n:,} | {b_rate:,.0f} | {a_rate:,.0f} | {arch['raw_bytes'] / arch['seconds'] / 1e6:.1f} "
            f"| {a_rate / b_rate:.0%} | {arch['peak_rss_mb']:.0f} MB | {base['peak_rss_mb']:.0f} MB "
            f"| {arch['stored_bytes'] / arch['raw_bytes']:.1%} ({arch['stored_bytes'] / 1e6:.1f} / "
            f"{arch['raw_bytes'] / 1e6:.1f} MB) |"
        )
    if len(rows) >= 2:
        first, last = rows[0][2]["peak_rss_mb"], rows[-1][2]["peak_rss_mb"]
        lines += [
            "",
            f"Peak RSS growth from {rows[0][0]:,} to {rows[-1][0]:,} messages: {last / first - 1:+.0%}.",
        ]
    write_section(NAME, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
