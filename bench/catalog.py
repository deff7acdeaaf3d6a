"""Benchmark: the catalog's hot paths on the per-dataset index against the old listing path.

Starts its own moto S3 server on 127.0.0.1 and, for each N (default 1,000 / 10,000 / 100,000),
seeds N manifests over 50 datasets (20 ClickHouse datasets with chains of increments, 10 Kafka
topics, 10 EMR jobs, 10 exports; every point with 20 objects; some failed (never the oldest), the
newest unverified), put directly in parallel threads, as the current version writes them. Then,
in the same run:

- **old**: the path before the index: list the dataset's folder, GET and parse every manifest
  (``Catalog.list_points`` as it was), then decide;
- **index**: the catalog as it is now: the RPO monitor reads each dataset's index head (one ranged
  GET), base choice and drill pick read the index and fetch only the manifests they use.

Measured per path: S3 requests (botocore ``before-send``), bytes read (``Content-Length`` of the
answers) and wall time of one RPO monitor pass (50 datasets), one base choice (``choose_base`` and
the chain of the chosen base, one ClickHouse dataset) and one drill pick (one Kafka topic: the pick
and its object list). The indexes are built once before (first use; its cost is reported too).
Writes its section of docs/benchmarks.md.

    .venv/bin/python bench/catalog.py [--sizes 1000,10000,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from _moto import moto_s3  # bench/ is the script's own folder
from _report import write_section

SECTION = "catalog"
BUCKET = "bench-catalog"
PREFIX = "catalog/"
NOW = datetime(2036, 1, 1, tzinfo=UTC)
WORKERS = 16
OBJECTS_PER_POINT = 20
KINDS = [("clickhouse_snapshot", 20), ("kafka_archive", 10), ("emr_output", 10), ("deep_archive_export", 10)]


class Meter:
    """S3 requests and bytes read by one client, and a stopwatch."""

    def __init__(self, client: Any) -> None:
        self.requests = 0
        self.bytes = 0
        self.lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._sent)
        client.meta.events.register("after-call.s3", self._answered)

    def _sent(self, **_: Any) -> None:
        with self.lock:
            self.requests += 1

    def _answered(self, http_response: Any = None, **_: Any) -> None:
        size = int((http_response.headers or {}).get("content-length", 0)) if http_response is not None else 0
        with self.lock:
            self.bytes += size

    def run(self, work: Callable[[], Any]) -> dict[str, float]:
        before = (self.requests, self.bytes)
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        return {"requests": self.requests - before[0], "bytes": self.bytes - before[1], "seconds": seconds}


def datasets() -> list[tuple[str, str]]:
    return [(kind, f"{kind.split('_')[0]}_{i:02d}") for kind, count in KINDS for i in range(count)]


def point_doc(kind: str, dataset: str, i: int, n: int, rng: random.Random) -> dict[str, Any]:
    """Manifest ``i`` of ``n`` of a dataset, oldest first (hourly for ClickHouse, else weekly)."""
    step = timedelta(hours=1) if kind == "clickhouse_snapshot" else timedelta(days=7)
    captured = NOW - step * (n - i)
    rp_id = captured.strftime("%Y%m%dT%H%M%SZ")
    base = None
    if kind == "clickhouse_snapshot" and i % 24:
        base = (captured - step).strftime("%Y%m%dT%H%M%SZ")
    failed = rng.random() < 0.02  # drawn for every point, so larger sizes keep their sequence
    # The oldest point is never failed: every dataset has a verified point, even at two per dataset.
    state = "unverified" if i == n - 1 else ("failed" if failed and i else "verified")
    location = f"s3://{BUCKET}/data/{kind}/{dataset}/{rp_id}/"
    objects = [
        {
            "key": f"data/{kind}/{dataset}/{rp_id}/part-{j:05d}.parquet",
            "size": 1_000_000 + j,
            "etag": f"{j:032x}",
        }
        for j in range(OBJECTS_PER_POINT)
    ]
    return {
        "kind": kind,
        "dataset": dataset,
        "recovery_point_id": rp_id,
        "captured_at": captured.isoformat(),
        "interval_start": (captured - step).isoformat(),
        "interval_end": captured.isoformat(),
        "location": location,
        "storage_class": "GLACIER" if kind == "kafka_archive" else "STANDARD",
        "objects": objects,
        "row_counts": {f"{dataset}.events": 1000 * i},
        "base": base,
        "verification": {
            "state": state,
            "verified_at": captured.isoformat() if state != "unverified" else None,
        },
    }


def seed(client: Any, n: int) -> None:
    """N manifests over the datasets, put directly (16 threads): the fast path to a large catalog."""
    rng = random.Random(n)
    per = n // len(datasets())
    jobs = [(kind, name, i) for kind, name in datasets() for i in range(per)]

    def put(job: tuple[str, str, int]) -> None:
        kind, name, i = job
        doc = point_doc(kind, name, i, per, rng)
        client.put_object(
            Bucket=BUCKET,
            Key=f"{PREFIX}{kind}/{name}/{doc['recovery_point_id']}.json",
            Body=json.dumps(doc).encode(),
            ContentType="application/json",
            Metadata={"revision": "1"},
        )

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(put, jobs))


def old_listing(catalog: Any, kind: str, dataset: str) -> Any:
    """``Catalog.list_points`` before the index: list the folder, GET and parse every manifest."""
    from backup_pipelines.core.manifest import Listing, Manifest

    points = []
    for obj in catalog.s3.iter_objects(BUCKET, f"{PREFIX}{kind}/{dataset}/"):
        if obj.key.endswith(".json") and "/_" not in obj.key:
            found = catalog.s3.get_bytes(BUCKET, obj.key)
            if found is not None:
                points.append(Manifest.from_json(found[0], obj.key))
    points.sort(key=lambda m: (m.captured_at, m.recovery_point_id))
    return Listing(points)


def paths(catalog: Any) -> dict[str, dict[str, Callable[[], Any]]]:
    from backup_pipelines.clickhouse.snapshot import choose_base
    from backup_pipelines.drill.plan import pick_recovery_point

    every = datasets()
    ch, topic = every[0], next(d for d in every if d[0] == "kafka_archive")
    full_every = timedelta(days=7)

    def old_monitor() -> None:
        for kind, name in every:
            verified = old_listing(catalog, kind, name).verified()
            assert verified, name

    def new_monitor() -> None:
        for kind, name in every:
            assert catalog.latest_verified_summary(kind, name) is not None, name

    def base(listing_of: Callable[[str, str], Any]) -> None:
        listing = listing_of(*ch)
        chosen = choose_base(listing, now=NOW, full_every=full_every)
        assert chosen is not None
        assert catalog.chain(chosen, listing=listing)

    def old_pick() -> None:
        listing = old_listing(catalog, *topic)
        point, _, _ = pick_recovery_point(
            listing.points, mode="latest", window=timedelta(days=30), now=NOW, rng=random.Random(1)
        )
        assert point is not None and point.objects

    def new_pick() -> None:
        listing = catalog.list_points(*topic)
        entry, _, _ = pick_recovery_point(
            listing.entries, mode="latest", window=timedelta(days=30), now=NOW, rng=random.Random(1)
        )
        assert entry is not None and listing.manifest(entry.recovery_point_id).objects

    return {
        "monitor": {"old": old_monitor, "index": new_monitor},
        "base choice": {
            "old": lambda: base(lambda k, d: old_listing(catalog, k, d)),
            "index": lambda: base(catalog.list_points),
        },
        "drill pick": {"old": old_pick, "index": new_pick},
    }


def measure(client: Any, catalog: Any, meter: Meter, n: int, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    seed(client, n)
    print(f"{n} manifests seeded in {time.perf_counter() - started:.0f} s", flush=True)
    build = meter.run(lambda: [catalog.index(kind, name) for kind, name in datasets()])
    print(f"  indexes built: {build['requests']} requests, {build['seconds']:.1f} s", flush=True)
    result: dict[str, Any] = {"build": build}
    for name, impl in paths(catalog).items():
        for path in ("old", "index"):
            runs = [meter.run(impl[path]) for _ in range(repeat if path == "index" or n < 100_000 else 1)]
            result[f"{name}/{path}"] = runs
            best = min(runs, key=lambda r: r["seconds"])
            print(
                f"  {name:12} {path:6} {best['requests']:>7} requests {best['bytes']:>12} bytes "
                f"{best['seconds']:8.3f} s",
                flush=True,
            )
    return result


def run_all(sizes: list[int], repeat: int) -> dict[int, dict[str, Any]]:
    import boto3
    from botocore.config import Config

    from backup_pipelines.core.catalog import Catalog

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    from backup_pipelines.core.s3 import BackupS3Hook

    class ClientS3Hook(BackupS3Hook):
        """The gateway over the bench's own (metered) client."""

        def __init__(self, client: Any) -> None:
            super().__init__(aws_conn_id=None)
            self._given = client

        def get_conn(self) -> Any:
            return self._given

    results: dict[int, dict[str, Any]] = {}
    for n in sizes:  # one server per size: each starts from an empty catalog
        with moto_s3() as endpoint:
            client = boto3.client(
                "s3", endpoint_url=endpoint, config=Config(max_pool_connections=WORKERS + 4)
            )
            client.create_bucket(Bucket=BUCKET)
            meter = Meter(client)
            catalog = Catalog(ClientS3Hook(client), bucket=BUCKET, prefix=PREFIX)
            results[n] = measure(client, catalog, meter, n, repeat)
    return results


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "requests": runs[0]["requests"],
        "bytes": runs[0]["bytes"],
        "seconds": statistics.median(r["seconds"] for r in runs),
    }


def report(results: dict[int, dict[str, Any]], repeat: int) -> str:
    rows = []
    for n, result in results.items():
        for name in ("monitor", "base choice", "drill pick"):
            old, new = _best(result[f"{name}/old"]), _best(result[f"{name}/index"])
            rows.append(
                f"| {n:,} | {name} | {old['requests']:,.0f} | {new['requests']:,.0f} "
                f"| {old['bytes'] / 1e6:,.2f} MB | {new['bytes'] / 1e6:,.3f} MB "
                f"| {old['seconds']:.3f} s | {new['seconds']:.3f} s |"
            )
    sizes = list(results)
    first, last = results[sizes[0]], results[sizes[-1]]
    t0, t1 = _best(first["monitor/index"])["seconds"], _best(last["monitor/index"])["seconds"]
    r0, r1 = _best(first["monitor/index"])["requests"], _best(last["monitor/index"])["requests"]
    builds = ", ".join(
        f"{n:,}: {r['build']['requests']:,} requests in {r['build']['seconds']:.1f} s"
        for n, r in results.items()
    )
    return f"""
## Catalog: the per-dataset index against the old listing path

{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs ({platform.machine()}), against a local moto S3 server;
N manifests over {len(datasets())} datasets ({OBJECTS_PER_POINT} objects each), `bench/catalog.py`
(median of {repeat} runs of the index path, requests and bytes of the first).

| manifests | path | requests, old | requests, index | read, old | read, index | time, old | time, index |
|---:|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

- RPO monitor pass on the index: {r0:,.0f} requests at {sizes[0]:,} manifests, {r1:,.0f} at {sizes[-1]:,}
  (target: at most datasets + 2 = {len(datasets()) + 2}, flat); time {t0:.3f} s -> {t1:.3f} s
  ({(t1 / t0 - 1) * 100:+.0f}%, target within 20%); the pass is 50 ranged GETs of at most
  32 KiB at every size, so what moves this figure is the machine's load, not the history.
- Base choice and drill pick on the index: one listing of the dataset's folder (1 request per
  1,000 manifests, to find manifests the index has not seen), one index GET, then only the
  manifests the decision uses (the chosen base's chain; the picked point and its object list).
- Old path: the monitor pass grows with the history ({_best(last["monitor/old"])["requests"]:,.0f} GETs at
  {sizes[-1]:,} manifests); base choice and drill pick read every manifest of the dataset.
- Building the indexes on first use (one listing and one GET per manifest, 16 threads): {builds}.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    results = run_all([int(s) for s in args.sizes.split(",")], args.repeat)
    text = report(results, args.repeat)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
