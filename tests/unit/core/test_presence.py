"""Presence of points' objects: a chain's folders checked with one listing, problems named."""

from __future__ import annotations

from typing import Any

from support.catalog import ClientS3Hook, manifest

from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.core.presence import Presence

BUCKET = "presence-test"


def _point(s3: Any, rp: str, files: int, *, base: str | None = None) -> Any:
    """A ClickHouse point in its own folder with ``files`` objects written to S3."""
    folder = f"clickhouse_snapshot/analytics/{rp}/"
    objects = []
    for i in range(files):
        key = f"{folder}data/part_{i}.bin"
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * (i + 1))["ETag"]
        objects.append(ObjectEntry(key=key, size=i + 1, etag=etag.strip('"')))
    return manifest(rp, base=base, bucket=BUCKET, objects=objects)


def _listings(s3: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    s3.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2",
        lambda params, **_: calls.append({k: v for k, v in params.items() if k != "EncodingType"}),
    )
    return calls


def test_a_chain_is_checked_with_one_listing_and_a_member_s_missing_object_is_named(moto_s3: Any) -> None:
    moto_s3.create_bucket(Bucket=BUCKET)
    full = _point(moto_s3, "20261123T0000Z", 30)
    other = _point(moto_s3, "20261123T0030Z", 5)  # between the members, not in the chain
    inc1 = _point(moto_s3, "20261123T0100Z", 3, base=full.recovery_point_id)
    inc2 = _point(moto_s3, "20261123T0200Z", 3, base=inc1.recovery_point_id)
    _point(moto_s3, "20261123T0300Z", 4)  # after the last member: never listed
    moto_s3.delete_object(Bucket=BUCKET, Key=inc1.objects[1].key)
    moto_s3.put_object(Bucket=BUCKET, Key=inc2.objects[0].key, Body=b"y")  # same size, another ETag
    calls = _listings(moto_s3)

    missing = Presence(ClientS3Hook(moto_s3)).missing([full, inc1, inc2])

    assert [(m.recovery_point_id, m.url, m.problem.split(":")[0]) for m in missing] == [
        ("20261123T0100Z", f"s3://{BUCKET}/{inc1.objects[1].key}", "object is missing"),
        ("20261123T0200Z", f"s3://{BUCKET}/{inc2.objects[0].key}", "object was replaced"),
    ]
    assert calls == [
        {
            "Bucket": BUCKET,
            "Prefix": "clickhouse_snapshot/analytics/",
            "StartAfter": "clickhouse_snapshot/analytics/20261123T0000Z",
        }
    ]
    assert Presence(ClientS3Hook(moto_s3)).missing([other]) == []


def test_a_listing_spans_pages_and_a_lone_point_lists_its_own_folder(moto_s3: Any) -> None:
    moto_s3.create_bucket(Bucket=BUCKET)
    full = _point(moto_s3, "20261123T0000Z", 1005)  # more than one page of 1,000 keys
    inc = _point(moto_s3, "20261123T0100Z", 2, base=full.recovery_point_id)
    moto_s3.delete_object(Bucket=BUCKET, Key=full.objects[-1].key)
    calls = _listings(moto_s3)

    missing = Presence(ClientS3Hook(moto_s3)).missing([full, inc])
    assert [m.url for m in missing] == [f"s3://{BUCKET}/{full.objects[-1].key}"]
    assert len(calls) == 2  # 1,006 keys: two pages
    calls.clear()
    assert Presence(ClientS3Hook(moto_s3)).missing([inc]) == []
    assert [c["Prefix"] for c in calls] == ["clickhouse_snapshot/analytics/20261123T0100Z/"]
