"""Benchmark: the snapshot task against a bare ``BACKUP``, verify along a growing chain, chain
resolution at 10,000 points.

Starts its own embedded stack (chDB + moto S3) in a temporary directory, then in the same run:

1. **Task vs bare BACKUP.** For each ``--sizes`` (rows of one MergeTree table, merges stopped) and
   for ``--tables`` tables of ``--parts`` parts each: the bare ``BACKUP ... TO S3(...)`` and
   ``ClickHouseSnapshotOperator.execute`` (a full backup of the same tables plus everything the
   task adds: catalog reads, base choice and its chain's presence check, table resolution, waiting
   on ``system.backups``, the ``.backup`` listing, part rows, the manifest write) alternate,
   ``--repeat`` times each. Target (issue 29): task <= bare + 0.3 s.
2. **Verify along a chain.** On the many-tables dataset: a full backup, then increments (one new
   part in a few tables each) up to ``--chain`` points; every point is verified as the DAG does
   (``VerifyService.verify_slot``: chain presence by listings, ``.backup`` listing, part rows,
   structure-only restore). Time and S3 bytes read (every response body the service's client
   received) at chain lengths 2 and ``--chain``, where verify runs ``--samples`` times (the point
   set back to unverified in between, untimed) and the medians are compared. Target: within 20%.
3. **Chain resolution**: 10,000 synthetic points (fulls every 24, increments between), effective
   states (``core.chains.resolve``) and the base choice (``choose_base``). Target: < 0.5 s.

The machine's load average is read before every measurement; all runs are reported, and the
summary shows the worst ratio seen. Writes its section of docs/benchmarks.md.

    .venv/bin/python bench/clickhouse_snapshot.py [--sizes 2000000,20000000] [--tables 50]
        [--parts 20] [--chain 24] [--repeat 3] [--samples 9]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _report import write_section  # bench/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
SECTION = "clickhouse_snapshot"
DB = "bench_snapshot"
WIDE = "bench_wide"
SLOT = datetime(2026, 11, 23, 14, tzinfo=UTC)
CHAIN_HEADER = (
    "| chain length | verify | of which ClickHouse's structure-only RESTORE | verify without it "
    "| of which not waiting on S3 (GetObject bodies read count as not waiting) | bytes read | S3 requests "
    "| load |\n"
    "|---:|---:|---:|---:|---:|---:|---|---|"
)
HEADER = (
    "| data | bare BACKUP (median) | snapshot task (median) | overhead (median) | overhead (worst run) "
    "| target met (median) | worst run within | all runs bare/task (s) | load |"
)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _config(path: Path, datasets: list[dict[str, Any]]) -> None:
    import yaml

    cfg = yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
    cfg["deadlines"] = {}
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-bench/",
            "s3_credentials": "connection",
            "full_every": "48h",
            "datasets": datasets,
        }
    )
    path.write_text(yaml.safe_dump(cfg))
    os.environ["BACKUP_PIPELINES_CONFIG"] = str(path)


def _context(slot: datetime) -> Any:
    return {"data_interval_start": slot - timedelta(hours=1), "data_interval_end": slot}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000000,20000000")
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--chain", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=9, help="verify runs at each compared length")
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


def _datasets(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    out = [
        {"name": f"rows_{size}_{n}", "database": DB, "tables": [f"events_{size}"]}
        for size in sizes
        for n in range(repeat)
    ]
    out += [{"name": f"wide_{n}", "database": WIDE, "tables": ["*"]} for n in range(repeat)]
    return [*out, {"name": "chain", "database": WIDE, "tables": ["*"]}]


def _run(stack: Any, workdir: Path, args: argparse.Namespace) -> int:
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    from backup_pipelines.core.config import load_config

    sizes = [int(s) for s in args.sizes.split(",") if s]
    _config(workdir / "backup.yaml", _datasets(sizes, args.repeat))
    cfg = load_config()
    stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
    client = ClickHouseHook().get_client()
    results: dict[str, Any] = {"sizes": [], "load": []}
    for size in sizes:
        _fill_rows(client, size)
        results["sizes"].append(
            _task_vs_bare(stack, client, cfg, f"rows_{size}", f"{DB}.events_{size}", args)
        )
        print(results["sizes"][-1]["line"], flush=True)
    _fill_wide(client, args.tables, args.parts)
    tables = ", ".join(f"TABLE {WIDE}.t{n}" for n in range(args.tables))
    wide_label = f"{args.tables} tables x {args.parts} parts"
    results["sizes"].append(_task_vs_bare(stack, client, cfg, "wide", tables, args, label=wide_label))
    print(results["sizes"][-1]["line"], flush=True)
    results["chain"], results["same"] = _verify_chain(client, cfg, args)
    results["resolution"] = _resolution()
    _report(results, args)
    return 0


def _fill_rows(client: Any, rows: int) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    table = f"{DB}.events_{rows}"
    client.command(
        f"CREATE TABLE {table} (id UInt64, at DateTime, user_id UInt32, kind LowCardinality(String), "
        "payload String) ENGINE = MergeTree ORDER BY (kind, id)"
    )
    client.command(f"SYSTEM STOP MERGES {table}")
    step = 2_000_000
    for first in range(0, rows, step):
        client.query(
            f"INSERT INTO {table} SELECT number + {{first:UInt64}}, "
            "toDateTime('2026-11-01') + number % 86400, "
            "number % 50000, ['view','click','buy'][number % 3 + 1], concat('p-', toString(number % 1000)) "
            "FROM numbers({count:UInt64})",
            parameters={"first": first, "count": min(step, rows - first)},
        )


def _fill_wide(client: Any, tables: int, parts: int) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {WIDE}")
    for n in range(tables):
        client.command(f"CREATE TABLE {WIDE}.t{n} (id UInt64, v String) ENGINE = MergeTree ORDER BY id")
        client.command(f"SYSTEM STOP MERGES {WIDE}.t{n}")
        for p in range(parts):
            client.query(
                f"INSERT INTO {WIDE}.t{n} SELECT number + {p * 1000}, toString(number) FROM numbers(1000)"
            )


def _task_vs_bare(
    stack: Any, client: Any, cfg: Any, stem: str, what: str, args: argparse.Namespace, *, label: str = ""
) -> dict[str, Any]:
    from backup_pipelines.clickhouse.engine import ClickHouseEngine
    from backup_pipelines.clickhouse.operators import ClickHouseSnapshotOperator

    creds = ClickHouseEngine(credentials="connection").s3_credentials()
    assert creds is not None
    bare, task, loads = [], [], []
    for n in range(args.repeat):
        loads.append(_load())
        url = f"{stack.s3_endpoint}/{cfg.storage.backup_bucket}/clickhouse-bench/bare-{stem}-{n}/"
        backup = what if what.startswith("TABLE ") else f"TABLE {what}"
        started = time.monotonic()
        client.query(
            f"BACKUP {backup} TO S3({{u:String}}, {{k:String}}, {{s:String}})",
            parameters={"u": url, "k": creds.access_key_id, "s": creds.secret_access_key},
        )
        bare.append(time.monotonic() - started)
        started = time.monotonic()
        ClickHouseSnapshotOperator(task_id="snapshot", dataset=f"{stem}_{n}").execute(_context(SLOT))
        task.append(time.monotonic() - started)
    over = [t - b for b, t in zip(bare, task, strict=True)]
    name = label or f"{int(stem.split('_')[1]):,} rows"
    runs = ", ".join(f"{b:.2f}/{t:.2f}" for b, t in zip(bare, task, strict=True))
    return {
        "name": name,
        "bare": statistics.median(bare),
        "task": statistics.median(task),
        "overhead_median": statistics.median(over),
        "overhead_worst": max(over),
        "runs": runs,
        "loads": loads,
        "line": f"{name}: bare/task {runs} s; overhead median {statistics.median(over):+.2f} s, "
        f"worst {max(over):+.2f} s",
    }


class _ReadCounter:
    """Bytes of every S3 response body the client received, the requests by operation, and how long
    the caller waited on S3 (from sending a request to its answer; overlapping requests counted once)."""

    def __init__(self, s3_client: Any) -> None:
        self.bytes = 0
        self.requests: dict[str, int] = {}
        self.intervals: list[tuple[float, float]] = []
        self._local = threading.local()
        s3_client.meta.events.register("after-call.s3", self._count)
        s3_client.meta.events.register("before-send.s3", self._sent)
        s3_client.meta.events.register("before-parse.s3", self._answered)

    def _sent(self, **_: Any) -> None:
        self._local.started = time.monotonic()

    def _answered(self, **_: Any) -> None:
        self.intervals.append((self._local.started, time.monotonic()))

    def take_wait(self) -> float:
        """Seconds with at least one request in flight since the last call (the S3 server's time,
        here moto's: it grows with the bucket, where S3's answer to a one-page listing does not).
        A GetObject counts until its headers: reading its body (the `.backup`, the chain file) comes
        after ``before-parse`` and counts as not waiting."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.intervals):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        self.intervals = []
        return total

    def _count(self, http_response: Any = None, model: Any = None, parsed: Any = None, **_: Any) -> None:
        self.requests[model.name] = self.requests.get(model.name, 0) + 1
        if model.name == "GetObject":  # a streamed body: its length as S3 sent it
            self.bytes += int((parsed or {}).get("ContentLength") or 0)
        else:
            self.bytes += len(http_response.content or b"")

    def reset(self) -> tuple[int, dict[str, int]]:
        out = (self.bytes, dict(self.requests))
        self.bytes, self.requests = 0, {}
        return out


def _verify_chain(
    client: Any, cfg: Any, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[int, dict[str, list[float]]]]:
    """Full + increments on the many-tables dataset, each verified; time and bytes read per length."""
    from backup_pipelines.clickhouse.backup_files import recovery_point_id
    from backup_pipelines.clickhouse.operators import ClickHouseSnapshotOperator
    from backup_pipelines.clickhouse.snapshot import KIND
    from backup_pipelines.clickhouse.verify import VerifyService

    service = VerifyService.from_config(cfg)
    s3 = service.verifier.store.s3
    counter = _ReadCounter(s3.client)
    engine = service.verifier.engine
    in_restore = [0.0]  # the structure-only RESTORE (its statement and the wait): ClickHouse's own part

    def timed(method: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            started = time.monotonic()
            try:
                return method(*a, **k)
            finally:
                in_restore[0] += time.monotonic() - started

        return run

    engine.start_restore = timed(engine.start_restore)  # type: ignore[method-assign]
    engine.wait = timed(engine.wait)  # type: ignore[method-assign]

    def again(slot: datetime, times: int) -> tuple[list[float], list[float]]:
        """Verify the slot's point ``times`` more times (set back to unverified between, untimed)."""
        samples, waits = [], []
        for _ in range(times):
            point = service.catalog.get(KIND, "chain", recovery_point_id(slot))
            assert point is not None
            service.catalog.mark_verification(point, state="unverified", checks=[], detail="bench: again")
            counter.take_wait()
            started = time.monotonic()
            service.verify_slot("chain", slot)
            samples.append(time.monotonic() - started)
            waits.append(counter.take_wait())
        return samples, waits

    rows: list[dict[str, Any]] = []
    for n in range(args.chain):
        slot = SLOT + timedelta(hours=n)
        if n:
            for t in range(0, args.tables, 10):  # a new part in every tenth table
                client.query(f"INSERT INTO {WIDE}.t{t} SELECT number + {10**6 * n}, 'x' FROM numbers(100)")
        ClickHouseSnapshotOperator(task_id="snapshot", dataset="chain").execute(_context(slot))
        counter.reset()
        counter.take_wait()
        load = _load()
        in_restore[0] = 0.0
        started = time.monotonic()
        service.verify_slot("chain", slot)
        seconds = time.monotonic() - started
        read, requests = counter.reset()
        samples, waits = [seconds], [counter.take_wait()]
        if n + 1 in (2, args.chain):  # the two lengths the target compares: verify again, untimed reset
            more = again(slot, args.samples - 1)
            samples, waits = samples + more[0], waits + more[1]
            counter.reset()
        rows.append(
            {
                "length": n + 1,
                "seconds": statistics.median(samples),
                "samples": samples,
                "waits": waits,
                "not_waiting": _not_waiting(samples, waits),
                "restore": in_restore[0],
                "bytes": read,
                "requests": requests,
                "load": load,
            }
        )
        print(
            f"chain length {n + 1}: verify {seconds:.2f} s (RESTORE {in_restore[0]:.2f} s), "
            f"{read / 1e6:.2f} MB read, {requests}",
            flush=True,
        )
    # The chain's length alone: both points verified again with the dataset as it is now (its index
    # and the bucket hold every point), the newest first (verifying the second point again gives it
    # a new revision, so the newer points' chain files would no longer be used).
    same = {length: again(SLOT + timedelta(hours=length - 1), args.samples) for length in (args.chain, 2)}
    return rows, {length: {"samples": v[0], "waits": v[1]} for length, v in same.items()}


def _not_waiting(samples: list[float], waits: list[float]) -> float:
    """Median seconds of verify not waiting on S3 (each sample less its own wait)."""
    return statistics.median(x - w for x, w in zip(samples, waits, strict=True))


def _resolution() -> dict[str, float]:
    from backup_pipelines.clickhouse.snapshot import choose_base
    from backup_pipelines.core.kinds import DatasetKind
    from backup_pipelines.core.manifest import Listing, Manifest, Verification

    start = datetime(2025, 1, 1, tzinfo=UTC)
    points: list[Manifest] = []
    for n in range(10_000):
        when = start + timedelta(hours=n)
        points.append(
            Manifest(
                kind=DatasetKind.CLICKHOUSE_SNAPSHOT,
                dataset="d",
                recovery_point_id=when.strftime("%Y%m%dT%H%MZ"),
                captured_at=when,
                base=None if n % 24 == 0 else points[-1].recovery_point_id,
                location=f"s3://b/d/{n}/",
                storage_class="STANDARD",
                verification=Verification(state="verified", verified_at=when),
            )
        )
    started = time.perf_counter()
    listing = Listing(list(points))
    listing.states()
    resolve_s = time.perf_counter() - started
    started = time.perf_counter()
    choose_base(listing, now=points[-1].captured_at, full_every=timedelta(hours=48))
    return {"resolve": resolve_s, "choose": time.perf_counter() - started}


def _requests(requests: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))


def _same_dataset(same: dict[int, dict[str, list[float]]], args: argparse.Namespace) -> str:
    """The two lengths verified again once the chain is whole: the same index and bucket for both."""
    short, long_ = same[2], same[args.chain]
    times = [statistics.median(r["samples"]) for r in (short, long_)]
    own = [_not_waiting(r["samples"], r["waits"]) for r in (short, long_)]
    runs = "; ".join(
        f"length {n}: " + ", ".join(f"{x:.3f}" for x in same[n]["samples"]) for n in (2, args.chain)
    )
    return (
        f"**Same dataset, chain length only** (target: within 1.2x): with all {args.chain} points in the "
        f"catalog, point {args.chain} verified again {args.samples} times, then point 2 ({runs} s): "
        f"medians {times[0]:.3f} -> {times[1]:.3f} s, **x{times[1] / times[0]:.2f}**; not waiting on S3 "
        f"{own[0]:.3f} -> {own[1]:.3f} s, x{own[1] / own[0]:.2f}."
    )


def _report(results: dict[str, Any], args: argparse.Namespace) -> None:
    today = datetime.now(UTC).date().isoformat()
    command = (
        f"bench/clickhouse_snapshot.py --sizes {args.sizes} --tables {args.tables} --parts {args.parts} "
        f"--chain {args.chain} --repeat {args.repeat} --samples {args.samples}"
    )
    size_rows = "\n".join(
        f"| {r['name']} | {r['bare']:.2f} s | {r['task']:.2f} s | {r['overhead_median']:+.2f} s | "
        f"**{r['overhead_worst']:+.2f} s** | {'yes' if r['overhead_median'] <= 0.3 else 'NO'} | "
        f"{'yes' if r['overhead_worst'] <= 0.3 else 'no'} | {r['runs']} | "
        f"{', '.join(map(str, r['loads']))} |"
        for r in results["sizes"]
    )
    chain = results["chain"]
    short, long_ = chain[1], chain[-1]
    chain_rows = "\n".join(
        f"| {r['length']} | {r['seconds']:.2f} s | {r.get('restore', 0):.2f} s "
        f"| {r['seconds'] - r.get('restore', 0):.2f} s | {r['not_waiting'] - r.get('restore', 0):.3f} s "
        f"| {r['bytes'] / 1e3:,.0f} KB | "
        f"{sum(r['requests'].values())} ({_requests(r['requests'])}) | {r['load']} |"
        for r in chain
        if r["length"] in (1, 2, 4, 8, 12, 16, 20, args.chain)
    )
    time_ratio, bytes_ratio = long_["seconds"] / short["seconds"], long_["bytes"] / short["bytes"]
    worst_ratio = max(long_["samples"]) / min(short["samples"])
    samples = "; ".join(
        f"length {r['length']}: " + ", ".join(f"{x:.3f}" for x in r["samples"]) for r in (short, long_)
    )
    own = [r["seconds"] - r.get("restore", 0) for r in (short, long_)]
    restore_ratio = long_.get("restore", 0) / short["restore"] if short.get("restore") else 0.0
    requests_ratio = sum(long_["requests"].values()) / sum(short["requests"].values())
    waited = [statistics.median(r["waits"]) for r in (short, long_)]
    same = _same_dataset(results["same"], args)
    res = results["resolution"]
    title = "task vs bare BACKUP, verify along a chain, chain resolution"
    text = f"""
## ClickHouse hourly snapshot: {title} (`bench/clickhouse_snapshot.py`)

`.venv/bin/python {command}`, {today}, {os.cpu_count()} CPUs ({platform.machine()}), chDB in this
process writing to a local moto S3 server (embedded stack); merges stopped on the source tables.
Load average (1 min) read before each measurement (the benchmark's own chDB and moto threads
count in it).

**Task vs bare BACKUP** (alternating, {args.repeat} runs each; target: task <= bare + 0.3 s on the
medians, as the issue measured it; the worst single run is shown beside it):

{HEADER}
|---|---:|---:|---:|---:|:---:|:---:|---|---|
{size_rows}

In chDB the task sends its `BACKUP` without `ASYNC`, so the statement returns when the backup has
ended (it used to poll `system.backups`, first backing off by 1.5x up to `poll_interval`, 10 s by
default, then every 30 ms, each poll a query competing with the backup). The rest of the overhead
is building the S3 client (once per process), the catalog read, the base chain's presence check,
the `.backup` listing, part rows and the manifest write with its index update.

**Verify along a chain** ({args.tables} tables, a new part in every tenth table per hour; each verify
as the DAG runs it; bytes = every S3 response body received, listings and GETs):

{CHAIN_HEADER}
{chain_rows}

At lengths 2 and {args.chain} verify ran {args.samples} times (the point set back to unverified
between runs, untimed); the table shows the median: {samples} s. Worst pairing (slowest at
{args.chain} against fastest at 2): x{worst_ratio:.2f}.

From length 2 to {args.chain} (target: within 1.2x, on the medians): verify time x{time_ratio:.2f}; the
structure-only RESTORE alone x{restore_ratio:.2f}; verify without it x{own[1] / own[0]:.2f}
({own[0]:.2f} -> {own[1]:.2f} s); bytes read x{bytes_ratio:.2f}; requests x{requests_ratio:.2f}; the
time waiting on S3 (here moto, one Python process whose listings walk the whole bucket, which
every snapshot of this benchmark fills) x{waited[1] / waited[0]:.2f} ({waited[0]:.3f} -> {waited[1]:.3f} s);
the time verify was not waiting on S3 x{long_["not_waiting"] / short["not_waiting"]:.2f}
({short["not_waiting"]:.3f} -> {long_["not_waiting"]:.3f} s). Along the way the dataset grows with the
chain (its index, the bucket moto walks); the chain's length alone:

{same}

Verify reads only the new point's `.backup` and finds the bases' files through their manifests'
checksums; the chain's presence is one listing across its folders; the bases' manifests and
object lists come from the base's chain file (one GET, written when the base was verified), not
two GETs per member. ClickHouse's structure-only RESTORE runs for the full and for tables whose
`CREATE` statement an increment changed: restoring an unchanged statement would make ClickHouse
open every base's `.backup` (each lists the whole logical backup), a time that grew with the chain.

**Chain resolution** at 10,000 points (fulls every 24): effective states of all points in
{res["resolve"] * 1000:.0f} ms, base choice in {res["choose"] * 1000:.0f} ms (target < 0.5 s; it used to
be quadratic: 79 s at 10,000 points).
"""
    write_section(SECTION, text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
