"""Eight writers on one dataset at once, against the embedded moto S3 server over real sockets:
new points, re-marked points, rewritten points and a failure reaching dependents. Afterwards the
index equals the manifests and no update is lost (every mark raised its manifest's revision once)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.catalog import catalog_on

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.manifest import Manifest, ObjectEntry

pytestmark = pytest.mark.integration

KIND, DATASET = "kafka_archive", "clicks.v2"
T0 = datetime(2029, 2, 28, 23, 59, 59, tzinfo=UTC)
THREADS, NEW_PER_THREAD, MARKS_PER_THREAD = 8, 4, 6
SHARED = [f"shared-{i}" for i in range(5)]


def point(rp_id: str, minutes: int, *, base: str | None = None, objects: int = 2) -> Manifest:
    return Manifest(
        kind=KIND,
        dataset=DATASET,
        recovery_point_id=rp_id,
        captured_at=T0 + timedelta(minutes=minutes),
        location=f"s3://archive/{DATASET}/{rp_id}/",
        storage_class="GLACIER",
        objects=[
            ObjectEntry(key=f"{DATASET}/{rp_id}/part-{i}.parquet", size=i, records=i) for i in range(objects)
        ],
        message_count=objects,
        base=base,
        verification={"state": "unverified"},
    )


@pytest.fixture
def bucket(embedded_stack: Any) -> str:
    name = f"index-race-{random.randrange(10**9)}"
    embedded_stack.create_buckets(name)
    return name


def revision(catalog: Catalog, rp_id: str) -> int:
    head = catalog.s3.client.head_object(Bucket=catalog.bucket, Key=catalog.key_for(KIND, DATASET, rp_id))
    return int(head["Metadata"]["revision"])


def test_eight_writers_lose_no_update_and_the_index_equals_the_manifests(
    embedded_stack: Any, bucket: str
) -> None:
    setup = catalog_on(embedded_stack.s3_client(), bucket)
    for i, rp_id in enumerate(SHARED):
        setup.write(point(rp_id, i, base=SHARED[i - 1] if i else None))
    marks: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        catalog = catalog_on(embedded_stack.s3_client(), bucket)  # its own client, as another task would
        rng = random.Random(n)
        start.wait()
        for j in range(NEW_PER_THREAD):
            catalog.write(point(f"t{n}-{j}", 100 + n * 10 + j, objects=1 + j))
            target = rng.choice(SHARED[1:])
            catalog.mark_verification(point(target, 0), state="verified", checks=[f"writer {n} mark {j}"])
            with lock:
                marks[target] += 1
        catalog.write(point(f"t{n}-0", 100 + n * 10, objects=9))  # a retry rewriting a point
        for j in range(MARKS_PER_THREAD - NEW_PER_THREAD):
            catalog.mark_verification(point(f"t{n}-{j}", 0), state="verified", checks=[f"own {j}"])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer, range(THREADS)))
    catalog = catalog_on(embedded_stack.s3_client(), bucket)
    assert catalog.check_index(KIND, DATASET) == []
    index = catalog.index(KIND, DATASET, fresh=False)
    expected = set(SHARED) | {f"t{n}-{j}" for n in range(THREADS) for j in range(NEW_PER_THREAD)}
    assert {e.recovery_point_id for e in index.entries} == expected
    for rp_id in SHARED[1:]:  # every mark raised the revision by one: none overwrote another
        assert revision(catalog, rp_id) == 1 + marks[rp_id], rp_id
        assert index.get(rp_id).revision == revision(catalog, rp_id)  # type: ignore[union-attr]
    for n in range(THREADS):
        rewritten = catalog.read(KIND, DATASET, f"t{n}-0")
        assert len(rewritten.objects) == 9 and rewritten.verification.state == "verified"
        assert index.get(f"t{n}-0").objects == 9  # type: ignore[union-attr]
        assert revision(catalog, f"t{n}-0") == 3  # written, rewritten, marked: in some order
    # shared-0 was never verified, so the whole shared chain is unverified in effect
    assert {index.get(p).state for p in SHARED} == {"unverified"}  # type: ignore[union-attr]


def test_a_failure_and_concurrent_marks_of_its_dependents_end_consistent(
    embedded_stack: Any, bucket: str
) -> None:
    setup = catalog_on(embedded_stack.s3_client(), bucket)
    chain = [f"c{i}" for i in range(8)]
    for i, rp_id in enumerate(chain):
        setup.write(point(rp_id, i, base=chain[i - 1] if i else None))
    start = threading.Barrier(THREADS)
    others = [c for c in chain if c != "c2"]  # seven writers verify the others while one fails c2

    def writer(n: int) -> None:
        catalog = catalog_on(embedded_stack.s3_client(), bucket)
        start.wait()
        if n == 0:
            catalog.mark_verification(
                point("c2", 2, base="c1"), state="failed", checks=["restore"], detail="bad part"
            )
        else:
            catalog.mark_verification(point(others[n - 1], 0), state="verified", checks=["restore"])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer, range(THREADS)))
    catalog = catalog_on(embedded_stack.s3_client(), bucket)
    assert catalog.check_index(KIND, DATASET) == []
    listing = catalog.list_points(KIND, DATASET)
    states = {e.recovery_point_id: e.state for e in listing.entries}
    assert states["c2"] == "failed" and all(states[c] == "failed" for c in chain[3:])
    for dependent in chain[3:]:  # failed by the propagation, or re-marked verified after it
        assert "c2 failed: bad part" in (listing.state_of(dependent).reason or ""), dependent
    newest = catalog.latest_verified(KIND, DATASET)
    assert newest is not None and newest.recovery_point_id == "c1" and len(newest.objects) == 2
    assert catalog.latest_verified_summary(KIND, DATASET).recovery_point_id == "c1"  # type: ignore[union-attr]
