"""The chain file: the next point's chain read once, never trusted past what the index says now."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support.catalog import manifest, moto_catalog

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.errors import BrokenChainError
from backup_pipelines.core.manifest import Manifest, ObjectEntry

BUCKET = "chains"
KIND, DATASET = "clickhouse_snapshot", "analytics"


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with moto_catalog(BUCKET) as catalog:
        yield catalog


#: A ClickHouse point's details: single values, and the per-table and per-part records.
DETAILS = {
    "backup_uuid": "u-1",
    "backup_type": "incremental",
    "files": 3,
    "on_cluster": None,
    "tables": ["events"],
    "parts": {"events": ["all_1_1_0"]},
    "part_rows": {"events": {"all_1_1_0": 10}},
}
SINGLE = {"backup_uuid": "u-1", "backup_type": "incremental", "files": 3, "on_cluster": None}


def _point(rp_id: str, hours_ago: int, base: str | None) -> Manifest:
    objects = [
        ObjectEntry(
            key=f"{KIND}/{DATASET}/{rp_id}/f{i}.bin", size=i + 1, etag=f"e{i}", checksum=f"c{rp_id}{i}"
        )
        for i in range(3)
    ]
    return manifest(rp_id, hours_ago=hours_ago, base=base, bucket=BUCKET, objects=objects, details=DETAILS)


def _chain(catalog: Catalog, length: int) -> list[Manifest]:
    points = []
    for n in range(length):
        point = _point(f"p{n}", length - n, points[-1].recovery_point_id if points else None)
        catalog.write(point)
        points.append(point)
    return points


def _remember(catalog: Catalog, chain: list[Manifest]) -> None:
    """Write ``chain``'s file as verify does, each member at its revision in the index."""
    listing = catalog.list_points(KIND, DATASET)
    catalog.chains.remember(chain, {e.recovery_point_id: e.revision for e in listing.entries})


def _gets(catalog: Catalog) -> Counter[str]:
    seen: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        seen[params["Key"].rsplit("/", 2)[-2] + "/" if "/_" in params["Key"] else "manifest"] += 1

    catalog.s3.client.meta.events.register("before-parameter-build.s3.GetObject", count)
    return seen


def test_a_remembered_chain_is_read_once_with_every_member_whole(catalog: Catalog) -> None:
    points = _chain(catalog, 5)
    _remember(catalog, points[:4])
    listing = catalog.list_points(KIND, DATASET)
    gets = _gets(catalog)

    chain = catalog.chain(points[4], listing=listing)

    assert [m.recovery_point_id for m in chain] == ["p0", "p1", "p2", "p3", "p4"]
    assert [m.objects for m in chain] == [p.objects for p in points]
    assert gets == {"_chains/": 1}, "one read: the base's chain file, no manifest or object list"
    assert [m.details for m in chain] == [SINGLE] * 4 + [DETAILS], "bases: single values; the point whole"


def test_a_base_s_lists_and_maps_stay_in_its_manifest_and_a_mark_keeps_them(catalog: Catalog) -> None:
    points = _chain(catalog, 3)
    _remember(catalog, points[:2])
    raw = catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, "p1"))
    assert raw is not None
    assert b"all_1_1_0" not in gzip.decompress(raw[0]) and b'"u-1"' in gzip.decompress(raw[0])
    listing = catalog.list_points(KIND, DATASET)
    base = catalog.chain(points[2], listing=listing)[0]

    catalog.mark_verification(
        base, state="failed", checks=["objects_present"], detail="gone", listing=listing
    )

    stored = catalog.read(KIND, DATASET, "p0")
    assert stored.verification.state == "failed"
    assert stored.details == DETAILS, "the stored manifest is re-marked, not the chain file's copy"


def test_a_member_re_marked_since_is_read_from_its_manifest(catalog: Catalog) -> None:
    points = _chain(catalog, 4)
    _remember(catalog, points[:3])
    catalog.mark_verification(points[1], state="verified", checks=["drill"], detail="re-checked by a drill")
    gets = _gets(catalog)

    chain = catalog.chain(points[3], listing=catalog.list_points(KIND, DATASET))

    assert chain[1].verification.detail == "re-checked by a drill", "the manifest as it is now, not the cache"
    assert gets["_chains/"] == 1 and gets["manifest"] >= 3


def test_a_base_failed_since_the_file_was_written_still_breaks_the_chain(catalog: Catalog) -> None:
    points = _chain(catalog, 4)
    _remember(catalog, points[:3])
    catalog.mark_verification(points[0], state="failed", checks=["objects_present"], detail="f0.bin is gone")

    with pytest.raises(BrokenChainError, match="depends on base p2, which failed verification: .*p0"):
        catalog.chain(points[3], listing=catalog.list_points(KIND, DATASET))


def test_an_unreadable_chain_file_is_ignored_and_the_manifests_read(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    points = _chain(catalog, 3)
    key = catalog.chains.key(KIND, DATASET, "p1")
    catalog.s3.client.put_object(Bucket=BUCKET, Key=key, Body=b'{"members": [{"revision": 1, "manif')

    chain = catalog.chain(points[2], listing=catalog.list_points(KIND, DATASET))

    assert [m.recovery_point_id for m in chain] == ["p0", "p1", "p2"]
    assert f"chain file s3://{BUCKET}/{key} is unreadable" in caplog.text


def test_deleting_a_point_deletes_its_chain_file(catalog: Catalog) -> None:
    points = _chain(catalog, 2)
    _remember(catalog, points)
    key = catalog.chains.key(KIND, DATASET, "p1")
    assert catalog.s3.get_bytes(BUCKET, key) is not None

    catalog.delete(points[1])

    assert catalog.s3.get_bytes(BUCKET, key) is None


def test_the_next_file_reuses_the_loaded_members_lines_and_adds_the_new_point(catalog: Catalog) -> None:
    import gzip

    points = _chain(catalog, 4)
    _remember(catalog, points[:3])
    listing = catalog.list_points(KIND, DATASET)
    chain = catalog.chain(points[3], listing=listing)
    _remember(catalog, chain)

    def lines(rp_id: str) -> list[bytes]:
        found = catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, rp_id))
        assert found is not None
        return gzip.decompress(found[0]).splitlines()

    assert lines("p3")[:3] == lines("p2"), "the bases' lines as they were loaded"
    assert len(lines("p3")) == 4 and b'"recovery_point_id":"p3"' in lines("p3")[3]

    def raw(rp_id: str) -> bytes:
        found = catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, rp_id))
        assert found is not None
        return found[0]

    assert raw("p3").startswith(raw("p2")), "the base's file as read, one gzip member appended"


def test_a_chain_file_that_cannot_be_written_is_a_warning_not_a_failure(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.exceptions import ClientError

    points = _chain(catalog, 2)

    def refused(*_: Any, **__: Any) -> str:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    monkeypatch.setattr(catalog.s3, "put_encrypted", refused)
    _remember(catalog, points)  # does not raise

    assert (
        "chain of clickhouse_snapshot/analytics/p1 not cached" in caplog.text
        and "AccessDenied" in caplog.text
    )
    assert catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, "p1")) is None


def test_a_chain_file_whose_line_is_not_a_manifest_is_ignored(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    import gzip

    points = _chain(catalog, 3)
    key = catalog.chains.key(KIND, DATASET, "p1")
    line = b'{"revision": 1, "manifest": {"kind": "%s", "dataset": "%s"}, "objects": []}' % (
        KIND.encode(),
        DATASET.encode(),
    )
    catalog.s3.client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(line))

    chain = catalog.chain(points[2], listing=catalog.list_points(KIND, DATASET))

    assert [m.recovery_point_id for m in chain] == ["p0", "p1", "p2"]
    assert f"chain file s3://{BUCKET}/{key} is unreadable" in caplog.text
    assert "recovery_point_id" in caplog.text, "the error names the field the line lacks"


def test_marking_a_point_verified_with_its_bases_caches_its_chain_at_the_revision_written(
    catalog: Catalog,
) -> None:
    points = _chain(catalog, 3)
    listing = catalog.list_points(KIND, DATASET)

    updated = catalog.mark_verification(
        points[1], state="verified", checks=["listing"], listing=listing, bases=points[:1]
    )
    catalog.write(_point("p3", 0, "p1"))
    gets = _gets(catalog)
    chain = catalog.chain(catalog.read(KIND, DATASET, "p3"), listing=catalog.list_points(KIND, DATASET))

    assert [m.recovery_point_id for m in chain] == ["p0", "p1", "p3"]
    assert chain[1].verification == updated.verification, "the base as it was just marked"
    assert gets["_chains/"] == 1 and gets["manifest"] == 1, "the bases from the chain file, not read again"


def test_a_failed_verification_caches_no_chain(catalog: Catalog) -> None:
    points = _chain(catalog, 2)

    catalog.mark_verification(
        points[1], state="failed", checks=["listing"], detail="a file is missing", bases=points[:1]
    )

    assert catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, "p1")) is None


def test_a_chain_that_is_not_the_loaded_one_plus_a_point_is_written_whole(catalog: Catalog) -> None:
    import gzip

    points = _chain(catalog, 4)
    _remember(catalog, points[:3])
    catalog.chain(points[3], listing=catalog.list_points(KIND, DATASET))  # loads p2's file
    _remember(catalog, [points[0], points[1]])  # another chain: nothing of the loaded file reused

    found = catalog.s3.get_bytes(BUCKET, catalog.chains.key(KIND, DATASET, "p1"))
    assert found is not None
    assert [
        json.loads(line)["manifest"]["recovery_point_id"] for line in gzip.decompress(found[0]).splitlines()
    ] == [
        "p0",
        "p1",
    ]


def test_a_chain_file_with_a_damaged_deflate_stream_is_ignored(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    import gzip

    points = _chain(catalog, 3)
    _remember(catalog, points[:2])
    key = catalog.chains.key(KIND, DATASET, "p1")
    found = catalog.s3.get_bytes(BUCKET, key)
    assert found is not None
    damaged = bytearray(found[0])
    damaged[10] = 0xFF  # the first byte of the deflate stream: an invalid block type
    with pytest.raises(Exception, match="invalid block type"):
        gzip.decompress(bytes(damaged))
    catalog.s3.client.put_object(Bucket=BUCKET, Key=key, Body=bytes(damaged))

    chain = catalog.chain(points[2], listing=catalog.list_points(KIND, DATASET))

    assert [m.recovery_point_id for m in chain] == ["p0", "p1", "p2"]
    assert f"chain file s3://{BUCKET}/{key} is unreadable" in caplog.text
