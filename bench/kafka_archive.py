"""Benchmark: the Kafka archive against a bare consume loop, on one partition and on six, peak RSS.

Usage: ``python bench/kafka_archive.py [--sizes 1000000,4000000] [--repeat 3] [--partitions 6]
[--per-partition 1000000] [--workers 2] [--session NAME]``

Starts the embedded stack (Tansu + moto). One partition: N sample events in a 1-partition topic,
then ``--repeat`` rounds, each measurement in its own process, in turn:

- bare: a confluent-kafka ``consume()`` loop touching key, value, headers and timestamp, with the
  archive's own consumer settings (``KafkaClient.consumer()``), from offset 0 to the end;
- archive: ``kafka.archive.archive_partition`` (zstd Parquet, SHA-256, upload to S3 as GLACIER,
  the default 256 MiB split) on the same data;
- bare on librdkafka's defaults: the loop this benchmark compared against before the archive
  tuned its consumer, for reference.

Several partitions: a topic of ``--partitions`` partitions of ``--per-partition`` events; for P =
1, 2, 4, ..., all, P tasks (one per partition, as the DAG maps them) over ``--workers`` worker
processes (as a LocalExecutor's or Celery's slots), bare against archive, alternating per round.

The load average is read before every round; a busy machine shows there. Imports and clients
(and the pandas import pyarrow makes at its first list conversion, timed once and reported) come
before the clock, for both. The archive's rounds also report what each stage cost (its thread's
CPU, its wait on the next stage) and both report their process's CPU seconds.

With ``--session NAME`` every run's figures are kept (``bench/.runs/``, not in git) and the
report covers all runs of that session: run it three times and the summary shows the lowest ratio
of every round, with the median and highest next to it. Writes the ``kafka_archive`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from _report import write_section  # bench/ is the script's own folder

NAME = "kafka_archive"
BUCKET = "bench-archive"


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bare_settings(librdkafka_defaults: bool) -> dict[str, Any]:
    """The bare loop's consumer config: the archive's own (connection, defaults, overrides), or
    librdkafka's defaults with only the connection and a group."""
    from backup_pipelines.kafka.client import ARCHIVE_CONSUMER_DEFAULTS, ARCHIVE_CONSUMER_OVERRIDES

    connection = json.loads(os.environ["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]
    if librdkafka_defaults:
        return {**connection, "group.id": "bench-bare", "enable.partition.eof": True}
    return {**ARCHIVE_CONSUMER_DEFAULTS, **connection, "group.id": "bench-bare", **ARCHIVE_CONSUMER_OVERRIDES}


def _bare(topic: str, partition: int, consumer: Any, bare: dict[str, Any], end: int) -> int:
    """The bare loop, up to offset ``end`` (as the archive reads up to its cut); its process imports
    confluent-kafka only (no Airflow, pyarrow or boto3, so no garbage collector walking their
    objects): the strictest baseline."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer.assign([TopicPartition(topic, partition, 0)])
    count = raw = 0
    while True:
        for msg in consumer.consume(bare["batch"], timeout=bare["timeout"]):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return count
                continue
            key, value, headers = msg.key(), msg.value(), msg.headers()
            msg.timestamp()
            count += 1
            raw += (len(key) if key else 0) + (len(value) if value else 0) + 16
            if isinstance(headers, list):
                raw += sum(len(k) + (len(v) if v else 0) for k, v in headers)
            if msg.offset() + 1 >= end:
                return count


def _archive(topic: str, partition: int, s3: Any, end: int) -> dict[str, Any]:
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.kafka.archive import archive_partition, upload_archive_file
    from backup_pipelines.kafka.client import KafkaClient

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as spool:
        result, entries = archive_partition(
            KafkaClient(group_id="bench-archive"),
            topic=topic,
            partition=partition,
            start_offset=0,
            end_offset=end,
            spool_dir=spool,
            upload=lambda f: upload_archive_file(
                s3,
                f,
                topic=topic,
                bucket=BUCKET,
                prefix=f"kafka/{time.time_ns()}/",
                encryption=Encryption(),
                storage_class="GLACIER",
                object_lock=None,
                now=now,
            ),
        )
    return {
        "records": result.records,
        "raw_bytes": sum(e["raw_bytes"] for e in entries),
        "stored_bytes": sum(e["size"] for e in entries),
        "stages": result.stages,
    }


def _warm() -> tuple[Any, float]:
    """Imports and clients, before any clock: the S3 client, and pyarrow's first conversion
    (which imports pandas once per process). Returns the S3 hook and that conversion's seconds."""
    import pyarrow as pa

    from backup_pipelines.core.s3 import BackupS3Hook

    s3 = BackupS3Hook(aws_conn_id="aws_default")
    s3.client  # noqa: B018 - build the client now, not on the first upload
    started = time.perf_counter()
    pa.array([b"x"], pa.binary())
    return s3, time.perf_counter() - started


def _cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread (librdkafka's own included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(kind: str, topic: str, bare: dict[str, Any]) -> dict[str, Any]:
    if kind == "archive":
        s3, first_conversion = _warm()
        rss_before, cpu = _current_rss_mb(), _cpu_seconds()
        started = time.perf_counter()
        out = _archive(topic, 0, s3, bare["end"])
    else:
        from confluent_kafka import Consumer

        consumer, first_conversion = Consumer(bare["config"]), 0.0
        rss_before, cpu = _current_rss_mb(), _cpu_seconds()
        started = time.perf_counter()
        out = {"records": _bare(topic, 0, consumer, bare, bare["end"])}
    seconds = time.perf_counter() - started
    return {
        **out,
        "seconds": seconds,
        "cpu_s": _cpu_seconds() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
        "first_conversion_s": first_conversion,
    }


def _run_child(kind: str, topic: str, env: dict[str, str], end: int) -> dict[str, Any]:
    from backup_pipelines.kafka.client import KafkaClient

    # consume() waits its whole timeout for a batch it cannot fill, so the last one (the end of the
    # partition) costs that timeout: the bare loop takes the archive's batch and wait.
    client = KafkaClient()
    bare = {
        "config": _bare_settings(kind == "defaults"),
        "batch": client.batch_size,
        "timeout": client.poll_timeout,
        "end": end,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--topic", topic, "--bare", json.dumps(bare)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- several partitions over a pool of workers ----------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(kind: str, bare: dict[str, Any]) -> None:
    _WORKER["bare"] = bare
    if kind == "archive":
        _WORKER["s3"], _ = _warm()


def _worker_task(kind: str, topic: str, partition: int) -> int:
    if kind == "archive":
        return int(_archive(topic, partition, _WORKER["s3"], _WORKER["bare"]["end"])["records"])
    from confluent_kafka import Consumer

    bare = _WORKER["bare"]
    consumer = Consumer(bare["config"])
    try:
        return _bare(topic, partition, consumer, bare, bare["end"])
    finally:
        consumer.close()


def _pool_round(kind: str, topic: str, partitions: int, workers: int, end: int) -> dict[str, float]:
    """P tasks over ``workers`` warm worker processes; seconds from the first task to the last."""
    from backup_pipelines.kafka.client import KafkaClient

    client = KafkaClient()
    bare = {
        "config": _bare_settings(False),
        "batch": client.batch_size,
        "timeout": client.poll_timeout,
        "end": end,
    }
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_worker_init, initargs=(kind, bare)) as pool:
        pool.map(time.sleep, [0.5] * workers, chunksize=1)  # every worker up and warm
        started = time.perf_counter()
        records = sum(pool.map(partial(_worker_task, kind, topic), range(partitions), chunksize=1))
        return {"records": records, "seconds": time.perf_counter() - started}


# -- the runs and the report ----------------------------------------------------------------------
def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _single(stack: Any, env: dict[str, str], n: int, repeat: int) -> dict[str, Any]:
    """``repeat`` rounds of bare, archive (and, in the first round only, the reference loop on
    librdkafka's defaults), alternating, each in its own process."""
    from backup_pipelines.dev.sample_data import seed_kafka

    topic = f"bench-{n}"
    now = datetime.now(UTC)
    seed_kafka(stack.kafka_bootstrap, topic, start=now - timedelta(days=7), end=now, messages=n, partitions=1)
    rounds = []
    for i in range(repeat):
        load = _load()
        kinds = ("bare", "archive", "defaults") if i == 0 else ("bare", "archive")
        runs = {kind: _run_child(kind, topic, env, n) for kind in kinds}
        assert {run["records"] for run in runs.values()} == {n}, runs
        rounds.append({"load": load, **runs})
        print(json.dumps({"n": n, **rounds[-1]}), flush=True)
    return {"n": n, "rounds": rounds}


def _multi(stack: Any, args: argparse.Namespace, session: _Session) -> None:
    from backup_pipelines.dev.sample_data import seed_kafka

    partitions, per_partition, workers, repeat = (
        args.partitions,
        args.per_partition,
        args.workers,
        args.repeat,
    )

    topic = f"bench-multi-{partitions}"
    now = datetime.now(UTC)
    total = partitions * per_partition
    seed_kafka(
        stack.kafka_bootstrap,
        topic,
        start=now - timedelta(days=7),
        end=now,
        messages=total,
        partitions=partitions,
    )
    counts = sorted({1, *range(2, partitions, 2), partitions})
    for p in counts:
        rounds = []
        for _ in range(repeat):
            load = _load()
            bare, archive = (
                _pool_round(kind, topic, p, workers, per_partition) for kind in ("bare", "archive")
            )
            assert bare["records"] == archive["records"] == p * per_partition, (bare, archive)
            rounds.append({"load": load, "bare": bare, "archive": archive})
            print(json.dumps({"partitions": p, **rounds[-1]}), flush=True)
        session.keep("multi", {"partitions": p, "rounds": rounds})


def _spread(values: list[float]) -> str:
    return f"{min(values):.0%} / {statistics.median(values):.0%} / {max(values):.0%}"


def _ratio(r: dict[str, Any]) -> float:
    return float(r["bare"]["seconds"] / r["archive"]["seconds"])


def _by_size(runs: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Every round of every run of the session, by message count."""
    sizes: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        for res in run["single"]:
            sizes.setdefault(res["n"], []).extend(res["rounds"])
    return sizes


def _single_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| messages | rounds | ratio lowest / median / highest (target >= 90%) | bare msg/s | archive msg/s "
        "| CPU s bare / archive | peak RSS archive (before) | peak RSS bare | librdkafka-defaults loop msg/s "
        "| stored / raw |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sizes = _by_size(runs)
    for n, rounds in sizes.items():
        rate = {
            k: statistics.median(n / r[k]["seconds"] for r in rounds if k in r)
            for k in ("bare", "archive", "defaults")
        }
        cpu = {k: statistics.median(r[k]["cpu_s"] for r in rounds) for k in ("bare", "archive")}
        arch = rounds[0]["archive"]
        lines.append(
            f"| {n:,} | {len(rounds)} | **{min(map(_ratio, rounds)):.0%}** / "
            f"{statistics.median(map(_ratio, rounds)):.0%} / {max(map(_ratio, rounds)):.0%} "
            f"| {rate['bare']:,.0f} | {rate['archive']:,.0f} | {cpu['bare']:.1f} / {cpu['archive']:.1f} "
            f"| {max(r['archive']['peak_rss_mb'] for r in rounds):.0f} MB ({arch['rss_before_mb']:.0f}) "
            f"| {max(r['bare']['peak_rss_mb'] for r in rounds):.0f} MB | {rate['defaults']:,.0f} "
            f"| {arch['stored_bytes'] / arch['raw_bytes']:.1%} |"
        )
    if len(sizes) >= 2:
        (small, first), (large, last) = next(iter(sizes.items())), list(sizes.items())[-1]
        peak = {k: max(r["archive"]["peak_rss_mb"] for r in rounds) for k, rounds in ((0, first), (1, last))}
        lines += [
            "",
            f"Peak RSS of the archive from {small:,} to {large:,} messages: {peak[1] / peak[0] - 1:+.0%} "
            f"({peak[0]:.0f} -> {peak[1]:.0f} MB, highest of all rounds; targets: under 400 MB, within 15%).",
        ]
    return lines


def _stage_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Where the archive's time goes: each stage's CPU and its wait on the next (medians)."""
    names = ("consume", "convert", "write", "upload")
    lines = [
        "| messages | " + " | ".join(f"{n} CPU s / waited s" for n in names) + " | archive wall s |",
        "|---:|" + "---:|" * (len(names) + 1),
    ]
    for n, rounds in _by_size(runs).items():
        stages = [r["archive"]["stages"] for r in rounds]
        cells = [
            f"{statistics.median(s[k]['cpu_s'] for s in stages):.2f} / "
            f"{statistics.median(s[k]['waited_s'] for s in stages):.2f}"
            for k in names
        ]
        wall = statistics.median(s["all"]["wall_s"] for s in stages)
        lines.append(f"| {n:,} | " + " | ".join(cells) + f" | {wall:.2f} |")
    return lines


def _round_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for run in runs:
        lines.append(f"- run {run['number']} ({run['started_at']}, load before it {run['load']}):")
        for res in run["single"]:
            for i, r in enumerate(res["rounds"], start=1):
                reference = f" / {r['defaults']['seconds']:.2f}" if "defaults" in r else ""
                lines.append(
                    f"  - {res['n']:,}, round {i} (load {r['load']}): {r['bare']['seconds']:.2f} / "
                    f"{r['archive']['seconds']:.2f}{reference} = {_ratio(r):.0%}"
                )
    return lines


def _multi_lines(runs: list[dict[str, Any]]) -> list[str]:
    per_partition, workers = runs[0]["per_partition"], runs[0]["workers"]
    lines = [
        f"| partitions (tasks over {workers} workers) | rounds | ratio lowest / median / highest "
        "| bare msg/s | archive msg/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    counts: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["multi"]:
            counts.setdefault(row["partitions"], []).extend(row["rounds"])
    for p, rounds in counts.items():
        rate = {
            k: statistics.median(p * per_partition / r[k]["seconds"] for r in rounds)
            for k in ("bare", "archive")
        }
        ratios = [_ratio(r) for r in rounds]
        lines.append(
            f"| {p} | {len(rounds)} | **{min(ratios):.0%}** / {statistics.median(ratios):.0%} / "
            f"{max(ratios):.0%} | {rate['bare']:,.0f} | {rate['archive']:,.0f} |"
        )
    lines += ["", "Every round (seconds bare / archive, load before it):", ""]
    for run in runs:
        for row in run["multi"]:
            cells = ", ".join(
                f"{r['bare']['seconds']:.2f} / {r['archive']['seconds']:.2f} (load {r['load']})"
                for r in row["rounds"]
            )
            lines.append(f"- run {run['number']}, {row['partitions']} partition(s): {cells}")
    return lines


class _Session:
    """The runs of a session (``--session NAME``), kept in bench/.runs/ (not in git) part by part as
    each finishes, so a run cut short still counts what it measured. Without a name: this run only."""

    def __init__(self, name: str | None, run: dict[str, Any]) -> None:
        self.run = {**run, "single": [], "multi": []}
        self.path = Path(__file__).resolve().parent / ".runs" / f"{NAME}-{name}.jsonl" if name else None

    def keep(self, part: str, result: dict[str, Any]) -> None:
        self.run[part].append(result)
        if self.path is not None:
            self.path.parent.mkdir(exist_ok=True)
            meta = {k: v for k, v in self.run.items() if k not in ("single", "multi")}
            with self.path.open("a") as out:
                out.write(json.dumps({"run": meta, part: result}) + "\n")

    def runs(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return [self.run]
        runs: dict[str, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                run = runs.setdefault(item["run"]["started_at"], {**item["run"], "single": [], "multi": []})
                for part in ("single", "multi"):
                    if part in item:
                        run[part].append(item[part])
        return list(runs.values())


def _target_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The targets, each met or missed by how much, from the lowest ratio and highest RSS seen."""
    sizes = _by_size(runs)
    lines = ["Targets (every round of every run counts; the worst one is shown):", ""]
    for n, rounds in sizes.items():
        worst = min(rounds, key=_ratio)
        verdict = "met" if _ratio(worst) >= 0.9 else f"**missed by {(0.9 - _ratio(worst)) * 100:.1f} points**"
        lines.append(
            f"- archive >= 90% of the bare loop at {n:,}: lowest {_ratio(worst):.0%} "
            f"(load {worst['load']} before that round): {verdict}; "
            f"{sum(_ratio(r) < 0.9 for r in rounds)} of {len(rounds)} rounds below 90%"
        )
    peaks = {n: max(r["archive"]["peak_rss_mb"] for r in rounds) for n, rounds in sizes.items()}
    highest = max(peaks.values())
    lines.append(
        f"- peak RSS under 400 MB: highest {highest:.0f} MB: {'met' if highest < 400 else '**missed**'}"
    )
    if len(peaks) >= 2:
        growth = list(peaks.values())[-1] / next(iter(peaks.values())) - 1
        lines.append(
            f"- peak RSS within 15% from {min(peaks):,} to {max(peaks):,}: {growth:+.0%}: "
            f"{'met' if abs(growth) <= 0.15 else '**missed**'}"
        )
    lines += [
        "",
        "Reading the ratios: with the load average above the CPU count, both processes wait for a core "
        "and the ratio measures the scheduler as much as the archive. Linux shares the CPU per thread, so "
        "an archive with four busy threads gets more of an oversubscribed machine than the one-thread "
        "bare loop (ratios above 100% are that, not an archive faster than consuming); the CPU seconds "
        "column is the cost that does not depend on the load.",
    ]
    return lines


def _parts(run: dict[str, Any]) -> str:
    measured = []
    if run["single"]:
        measured.append("one partition at " + ", ".join(f"{res['n']:,}" for res in run["single"]))
    if run["multi"]:
        measured.append(f"{run['partitions']} partitions of {run['per_partition']:,}")
    return " and ".join(measured)


def _report(runs: list[dict[str, Any]], command: str) -> str:
    for number, run in enumerate(runs, start=1):
        run["number"] = number
    parts = "; ".join(f"run {run['number']}: {_parts(run)}" for run in runs)
    first_conversion = statistics.median(
        [r["archive"]["first_conversion_s"] for run in runs for res in run["single"] for r in res["rounds"]]
        or [0.0]
    )
    loads = [
        r["load"] for run in runs for part in ("single", "multi") for res in run[part] for r in res["rounds"]
    ]
    lines = [
        "## Kafka weekly archive (`bench/kafka_archive.py`)",
        "",
        f"`{command}`, run {len(runs)} time(s) in one session, {runs[0]['started_at']} to "
        f"{runs[-1]['started_at']} ({parts}), {runs[0]['cpus']} CPUs. The 1-minute load average before "
        f"the rounds ranged {min(loads)} to {max(loads)}: other engineers' tests and benchmarks ran on "
        "the same 2 cores "
        "(the figure before each round is listed below). Embedded Tansu broker (in memory) and moto S3 "
        "on the same machine; sample events (~90 B key+value, 2 headers).",
        "",
        "Archive = `kafka.archive.archive_partition`: four overlapped stages (consume in the task's thread; "
        "Arrow conversion; zstd Parquet writing and SHA-256; upload as GLACIER and its check). Bare = a "
        "`consume()` loop touching key, value, headers and timestamp with the archive's consumer settings "
        "(the same fetch tuning, so the ratio is the archive's own cost); the loop on librdkafka's defaults, "
        "the old baseline, is shown for reference. Both read up to the partition's end offset, known in "
        "advance as the plan's cut is. Every measurement runs in its own process; imports and clients come "
        f"before the clock, for both (pyarrow's first conversion imports pandas: {first_conversion:.2f} s "
        "once per process, not in the figures). Ratio = bare seconds / archive seconds of the same round; "
        "**the lowest ratio of every round of every run is the headline figure**. CPU s = the process's "
        "CPU seconds over the measurement, all threads (librdkafka's included).",
        "",
    ]
    single = [run for run in runs if run["single"]]
    if single:
        lines += [
            "### One partition",
            "",
            *_target_lines(single),
            "",
            *_single_lines(single),
            "",
            "Where the archive's time goes (medians; CPU seconds of each stage's thread, and seconds it "
            "waited on the next stage's full queue: a stage that waits is faster than the one after it):",
            "",
            *_stage_lines(single),
            "",
            "Every round (load average before it; seconds bare / archive (/ librdkafka-defaults loop, "
            "first round only) = ratio):",
            "",
            *_round_lines(single),
        ]
    multi = [run for run in runs if run["multi"]]
    if multi:
        first = multi[0]
        lines += [
            "",
            f"### {first['partitions']} partitions, one task per partition over {first['workers']} "
            "worker processes",
            "",
            f"{first['per_partition']:,} events per partition; P partitions = P tasks on {first['workers']} "
            "warm worker processes (each task archives or bare-consumes one partition, as the DAG's mapped "
            "tasks do); seconds from the first task's start to the last one's end.",
            "",
            *_multi_lines(multi),
        ]
    return "\n".join(lines)


def _measure(args: argparse.Namespace, session: _Session) -> None:
    """One run: the embedded stack, the sizes' rounds, then the several-partition rounds."""
    from backup_pipelines.dev.airflow import airflow_env
    from backup_pipelines.dev.stack import EmbeddedStack

    with (
        tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp,
        EmbeddedStack(Path(tmp) / "stack") as stack,
    ):
        env = {**os.environ, **stack.env(), **airflow_env(Path(tmp) / "airflow")}
        os.environ.update(env)  # the pool's workers inherit the connections
        stack.create_buckets(BUCKET)
        for n in filter(None, args.sizes.split(",")):
            session.keep("single", _single(stack, env, int(n), args.repeat))
        if args.partitions:
            _multi(stack, args, session)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds of each measurement")
    parser.add_argument("--partitions", type=int, default=6, help="0: one partition only")
    parser.add_argument("--per-partition", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--session", help="report this run with the earlier runs of this session name")
    parser.add_argument("--print-only", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument(
        "--report-only", action="store_true", help="report the session's runs, measure nothing"
    )
    parser.add_argument("--child")
    parser.add_argument("--bare", default="{}")
    parser.add_argument("--topic")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.topic, json.loads(args.bare))))
        return 0

    run: dict[str, Any] = {
        "started_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "load": _load(),
        "cpus": os.cpu_count(),
        "partitions": args.partitions,
        "per_partition": args.per_partition,
        "workers": args.workers,
    }
    session = _Session(args.session, run)
    if not args.report_only:
        _measure(args, session)
    command = (
        f".venv/bin/python bench/kafka_archive.py --sizes {args.sizes} --repeat {args.repeat} "
        f"--partitions {args.partitions} --per-partition {args.per_partition} --workers {args.workers}"
    )
    text = _report(session.runs(), command)
    if not args.print_only:
        write_section(NAME, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
