"""Benchmark: the EMR archive task against the limit, a bare ``ThreadPoolExecutor(16)`` copy loop.

Starts its own moto S3 server on 127.0.0.1 and writes N objects of ``--size`` bytes (1 KiB: the work
is requests, not bytes). For each N, in alternating order, each in its own child process (so peak
RSS is the run's own):

- **bare**: one paginated listing of the source, then ``copy_object`` of every key on a
  ``ThreadPoolExecutor(16)``: no checksum, no verification, no manifest: the limit;
- **bare-same**: the same loop sending the archive's request (conditional on the listed ETag,
  SHA-256, encryption, storage class), so the server's share of the cost is in both;
- **archive**: ``EmrArchiveService.archive`` of the same day into an empty archive bucket (the
  task's whole path: previous manifest, listings, verified copies, verifying listing, manifest);
- **re-run**: the same archive again, unchanged.

Each child counts S3 API calls (botocore ``after-call``) and HTTP attempts (``before-send``) on its
client, and reports its peak RSS (``VmHWM``, reset as the run starts) and its RSS before the run
(imports and clients).
Writes its section of docs/benchmarks.md.

    .venv/bin/python bench/emr_archive.py [--sizes 1000,10000] [--repeat 3] [--size 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _moto import moto_s3  # bench/ is the script's own folder
from _report import write_section

SECTION = "emr_archive"
DAY = "2026-01-01"
WORKERS = 16
BARE_MODES = ("bare", "bare-same")


def _rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_peak() -> bool:
    """Start this process's peak RSS (``VmHWM``) from now. ``ru_maxrss`` cannot be used: a child
    started by ``fork`` + ``exec`` inherits the parent's peak in it (the parent holding 100,000
    seeded objects' responses read as the archive's peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _peak_kb(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _counting(client: Any) -> tuple[Counter[str], list[float]]:
    """API calls by operation; [HTTP attempts, seconds spent in ListObjectsV2 calls]."""
    calls: Counter[str] = Counter()
    totals = [0.0, 0.0]
    local, lock = threading.local(), threading.Lock()

    def before(**_: Any) -> None:
        local.started = time.perf_counter()

    def after(model: Any, **_: Any) -> None:
        with lock:
            calls[model.name] += 1
            if model.name == "ListObjectsV2":
                totals[1] += time.perf_counter() - local.started

    def sent(**_: Any) -> None:
        with lock:
            totals[0] += 1

    client.meta.events.register("before-call.s3", before)
    client.meta.events.register("after-call.s3", after)
    client.meta.events.register("before-send.s3", sent)
    return calls, totals


def _catalog(archive: str) -> str:
    """Each archive bucket's own catalog: a first run has no previous manifest of the day (one left
    by another run would be read and held, and its objects copied again as changed)."""
    return f"{archive}-catalog"


def _config(src: str, archive: str) -> Any:
    from backup_pipelines.core.config import BackupConfig

    return BackupConfig.model_validate(
        {
            "connections": {"aws": "aws_bench"},
            "storage": {"backup_bucket": _catalog(archive), "archive_bucket": archive},
            "alerts": {"recipients": ["bench@example.com"]},
            "emr_archive": {
                "concurrency": WORKERS,
                "jobs": [{"name": "job", "source": f"s3://{src}/job/dt={{{{ ds }}}}/"}],
            },
        }
    )


def child(mode: str, src: str, dest: str) -> dict[str, Any]:
    """One measured run in this process; returns its figures."""
    from backup_pipelines.core.manifest import Manifest
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.emr.archive import EmrArchiveService

    cfg = _config(src, dest)
    if mode in BARE_MODES:
        hook = BackupS3Hook(aws_conn_id="aws_bench", max_pool_connections=WORKERS + 4)
        client = hook.client
    else:
        service = EmrArchiveService.from_config(cfg)
        client = service.s3.client
    client.list_buckets()  # connection and credentials up before the clock starts
    calls, totals = _counting(client)
    before = _rss_kb()
    reset = _reset_peak()
    started = time.perf_counter()
    if mode in BARE_MODES:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=src, Prefix=f"job/dt={DAY}/")
        listed = [(o["Key"], o["ETag"]) for page in pages for o in page.get("Contents", [])]
        same: dict[str, Any] = {}
        if mode == "bare-same":  # the archive's own request: conditional, SHA-256, encryption, class
            storage = cfg.storage
            same = {
                "MetadataDirective": "COPY",
                "ChecksumAlgorithm": "SHA256",
                **hook.write_args(
                    dest,
                    encryption=storage.encryption,
                    storage_class=cfg.emr_archive.storage_class,
                    object_lock=None,
                ),
            }

        def copy(item: tuple[str, str]) -> Any:
            key, etag = item
            extra = {"CopySourceIfMatch": etag, **same} if same else {}
            return client.copy_object(Bucket=dest, Key=key, CopySource={"Bucket": src, "Key": key}, **extra)

        with ThreadPoolExecutor(WORKERS) as pool:
            for _ in pool.map(copy, listed):  # responses dropped as they come, as the archive does
                pass
        objects = len(listed)
    else:
        objects = service.archive(
            "job", day=DAY, source_url=f"s3://{src}/job/dt={DAY}/", interval=(None, None), run_id=mode
        ).objects
    seconds = time.perf_counter() - started
    peak = _peak_kb(reset)
    result = {
        "mode": mode,
        "objects": objects,
        "seconds": seconds,
        "calls": dict(calls),
        "attempts": int(totals[0]),
        "listing_seconds": totals[1],
        "rss_before_kb": before,
        "rss_peak_kb": peak,
        "peak_from": "VmHWM" if reset else "ru_maxrss",
    }
    if mode not in BARE_MODES:  # what the manifest itself takes: its JSON, and its model in memory
        raw, _ = service.s3.get_bytes(_catalog(dest), f"catalog/emr_output/job/dt={DAY}.json") or (b"", "")
        head = Manifest.from_json(raw, "bench")
        object_list = b""
        if head.objects_file:  # schema 2: the object list is a file of its own beside the manifest
            key = f"catalog/emr_output/job/{head.objects_file}"
            object_list = (service.s3.get_bytes(_catalog(dest), key) or (b"", ""))[0]
        result["manifest_bytes"] = len(raw) + len(object_list)
        tracemalloc.start()
        manifest = service.catalog.read("emr_output", "job", head.recovery_point_id)
        result["manifest_model_bytes"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del manifest
    return result


def _run_child(mode: str, src: str, dest: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, src, dest], check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    calls = sum(result["calls"].values())
    print(
        f"  {mode:8} {result['objects']:>7} objects {result['seconds']:8.1f} s {calls:>7} calls", flush=True
    )
    return result


def _seed(client: Any, bucket: str, n: int, size: int) -> None:
    client.create_bucket(Bucket=bucket)
    body = os.urandom(size)
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in pool.map(  # not held: every child this process starts would inherit the memory
            lambda i: client.put_object(Bucket=bucket, Key=f"job/dt={DAY}/part-{i:06d}.parquet", Body=body),
            range(n),
        ):
            pass


def measure(
    client: Any, n: int, repeat: int, size: int, *, bare: bool = True
) -> dict[str, list[dict[str, Any]]]:
    src = f"bench-src-{n}"
    started = time.perf_counter()
    _seed(client, src, n, size)
    print(f"{n} objects seeded in {time.perf_counter() - started:.0f} s", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "bare-same": [], "archive": [], "rerun": []}
    for r in range(repeat):
        order = ["bare", "bare-same", "archive"] if r % 2 == 0 else ["archive", "bare-same", "bare"]
        for mode in order if bare else ["archive"]:
            dest = f"bench-{mode}-{n}-{r}"
            client.create_bucket(Bucket=dest)
            client.create_bucket(Bucket=_catalog(dest))
            runs[mode].append(_run_child(mode, src, dest))
            if mode == "archive":
                runs["rerun"].append(_run_child("rerun", src, dest))
    return runs


HEADER = "\n".join(
    [
        "| objects | bare s | archive s | archive / bare (target <= 1.25x) "
        "| bare, the archive's request s | archive / that | archive's listings s "
        "| archive / bare without listings | re-run s "
        "| requests per object, first run (target <= 1.1) | re-run (target <= 0.01) "
        "| archive peak RSS MB (before the run) | RSS growth per object, bytes | bare peak RSS MB "
        "| manifest JSON MB | manifest model in memory per object, bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
)


def _per_object(run: dict[str, Any]) -> float:
    return sum(run["calls"].values()) / run["objects"]


def _vs_bare(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, str]:
    """The bare columns and the bare peak RSS ("-" where this size ran the archive alone)."""
    if not runs.get("bare"):
        return "| - | - | - | - | - ", "-"
    bare = statistics.median(r["seconds"] for r in runs["bare"])
    same = statistics.median(r["seconds"] for r in runs.get("bare-same") or runs["bare"])
    arc = statistics.median(r["seconds"] for r in runs["archive"])
    bare_net = statistics.median(r["seconds"] - r["listing_seconds"] for r in runs["bare"])
    arc_net = statistics.median(r["seconds"] - r["listing_seconds"] for r in runs["archive"])
    listing = statistics.median(r["listing_seconds"] for r in runs["archive"])
    peak_bare = max(r["rss_peak_kb"] for r in runs["bare"]) / 1024
    return (
        f"| {bare:.1f} | {arc:.1f} | **{arc / bare:.2f}x** | {same:.1f} | {arc / same:.2f}x "
        f"| {listing:.1f} | {arc_net / bare_net:.2f}x ",
        f"{peak_bare:.0f}",
    )


def _row(n: int, runs: dict[str, list[dict[str, Any]]]) -> str:
    arc = statistics.median(r["seconds"] for r in runs["archive"])
    rerun = statistics.median(r["seconds"] for r in runs["rerun"])
    first, again = runs["archive"][0], runs["rerun"][0]
    peak = max(r["rss_peak_kb"] for r in runs["archive"]) / 1024
    before = first["rss_before_kb"] / 1024
    calls = ", ".join(f"{v} {k}" for k, v in sorted(first["calls"].items(), key=lambda kv: -kv[1]))
    bare_cells, peak_bare = _vs_bare(runs)
    if not runs.get("bare"):
        bare_cells = f"| - | {arc:.1f} | - | - | - | - | - "
    return (
        f"| {n:,} {bare_cells}| {rerun:.1f} "
        f"| **{_per_object(first):.4f}** ({calls}) | **{_per_object(again):.4f}** "
        f"| {peak:.0f} ({before:.0f}) | {(peak - before) * 1024 * 1024 / n:,.0f} | {peak_bare} "
        f"| {first['manifest_bytes'] / 1e6:.1f} | {first['manifest_model_bytes'] / n:,.0f} |"
    )


def _beyond_manifest(runs: dict[str, list[dict[str, Any]]]) -> str:
    """MB the archive's peak RSS grew by beyond the manifest itself (the target: flat in the count)."""
    peak = max(runs["archive"], key=lambda r: r["rss_peak_kb"])
    grown = (peak["rss_peak_kb"] - peak["rss_before_kb"]) * 1024
    model = runs["archive"][0]["manifest_model_bytes"]
    return (
        f"{(grown - model) / 1e6:.1f} MB (grew {grown / 1e6:.1f} MB, the manifest {model / 1e6:.1f} MB; "
        f"peak from {peak.get('peak_from', 'ru_maxrss')})"
    )


def report(results: dict[int, dict[str, list[dict[str, Any]]]], args: argparse.Namespace) -> str:
    rows = "\n".join(_row(n, runs) for n, runs in results.items())
    beyond = "; ".join(f"{n:,}: {_beyond_manifest(runs)}" for n, runs in results.items())
    raw = "\n".join(
        f"- {n:,}: "
        + "; ".join(
            f"{mode} " + " / ".join(f"{r['seconds']:.1f}" for r in runs[mode])
            for mode in ("bare", "bare-same", "archive", "rerun")
            if runs.get(mode)
        )
        for n, runs in results.items()
    )
    return f"""
## EMR output archive (`bench/emr_archive.py`)

`.venv/bin/python bench/emr_archive.py --sizes {args.sizes} --repeat {args.repeat} --size {args.size}`,
{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs ({platform.machine()}), against a local moto S3
server (one Python process) on the same machine. Objects of {args.size} bytes: the work is requests.
**bare** = one listing, then `copy_object` of every key on a `ThreadPoolExecutor(16)` (no checksum,
no verification, no manifest): the limit. **bare, the archive's request** = the same loop sending
the archive's `CopyObject` (conditional on the listed ETag, `ChecksumAlgorithm=SHA256`, encryption,
storage class): what S3 (here: moto, one Python process on the same 2 cores) spends on those
requests, so the ratio to it is the archive's own cost on the worker.
**archive** = `EmrArchiveService.archive` of the day into an empty archive bucket (previous
manifest, listings, 16-way verified copies, verifying listing, manifest); **re-run** = the same
day again, unchanged. Each run in its own process, alternating; times are medians; requests are
S3 API calls counted on the run's client (botocore `after-call`).

{HEADER}
{rows}

Peak RSS growth beyond the manifest itself (what the run holds besides the point it is writing;
target: flat in the object count): {beyond}. The peak is the run's own (`VmHWM`, reset as the run
starts: `ru_maxrss` would carry the benchmark parent's peak into every child it starts); the
manifest is its model as Python allocates it (`tracemalloc` while the point is read back), without
the allocator's rounding, which therefore counts as "beyond".

All runs, seconds:

{raw}
"""


def run_all(args: argparse.Namespace) -> dict[int, dict[str, list[dict[str, Any]]]]:
    import boto3
    from botocore.config import Config

    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=WORKERS + 4))
        for n in (int(s) for s in args.sizes.split(",")):
            bare = args.bare_up_to is None or n <= args.bare_up_to
            results[n] = measure(client, n, args.repeat if n < 100_000 else 1, args.size, bare=bare)
            if args.results:
                Path(args.results).write_text(json.dumps(results, indent=1))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--results", help="also write every run's figures to this JSON file, size by size")
    parser.add_argument("--from-results", help="only render the report from a --results file")
    parser.add_argument(
        "--bare-up-to", type=int, help="bare loops only up to this many objects (above: the archive alone)"
    )
    parser.add_argument("--also", help="report these earlier --results (other sizes) with this run's")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.from_results:
        results = {int(n): runs for n, runs in json.loads(Path(args.from_results).read_text()).items()}
    else:
        results = run_all(args)
    if args.also:
        earlier = {int(n): runs for n, runs in json.loads(Path(args.also).read_text()).items()}
        results = dict(sorted({**earlier, **results}.items()))
    text = report(results, args)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
