"""The per-dataset catalog index against in-process moto: kept current by writes and state changes,
read by the hot paths, rebuilt from the manifests when missing, stale or corrupt, compared with them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.catalog import moto_catalog

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.index import INDEX_NAME, DatasetIndex
from backup_pipelines.core.manifest import Manifest, ObjectEntry

BUCKET = "index-test"
KIND, DATASET = "clickhouse_snapshot", "analytics"
T0 = datetime(2031, 3, 9, 22, 17, tzinfo=UTC)
INDEX_KEY = f"catalog/{KIND}/{DATASET}/{INDEX_NAME}"


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with moto_catalog(BUCKET) as catalog:
        yield catalog


def point(
    rp_id: str, hours: int, *, base: str | None = None, state: str = "verified", objects: int = 3
) -> Manifest:
    return Manifest(
        kind=KIND,
        dataset=DATASET,
        recovery_point_id=rp_id,
        captured_at=T0 + timedelta(hours=hours),
        location=f"s3://data/{KIND}/{DATASET}/{rp_id}/",
        storage_class="STANDARD",
        objects=[
            ObjectEntry(key=f"{KIND}/{DATASET}/{rp_id}/d/\u00e9t\u00e9 {i}.bin", size=i * 7, sha256=f"{i:x}")
            for i in range(objects)
        ],
        row_counts={"analytics.events": hours * 11, "analytics.users": 0},
        base=base,
        verification={"state": state},
        details={"retention_warning": "topic retention 1 h"} if rp_id == "warn" else {},
    )


class Counting:
    """Requests the catalog's client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.s3", lambda model, **_: self.calls.append(model.name))

    def reset(self) -> None:
        self.calls.clear()


def stored_index(catalog: Catalog) -> DatasetIndex:
    raw = catalog.s3.client.get_object(Bucket=BUCKET, Key=INDEX_KEY)["Body"].read()
    return DatasetIndex.from_bytes(raw, INDEX_KEY)


def test_writes_keep_the_index_current_and_the_objects_out_of_the_manifest(catalog: Catalog) -> None:
    catalog.write(point("a", 1, objects=500))
    catalog.write(point("b", 2, base="a", state="unverified"))
    raw = json.loads(
        catalog.s3.client.get_object(Bucket=BUCKET, Key=catalog.key_for(KIND, DATASET, "a"))["Body"].read()
    )
    assert raw["schema_version"] == 2 and raw["objects"] == [] and raw["object_count"] == 500
    assert raw["objects_file"].startswith("_objects/a.")
    index = stored_index(catalog)
    assert [(e.recovery_point_id, e.state, e.objects, e.bytes, e.rows) for e in index.entries] == [
        ("a", "verified", 500, sum(i * 7 for i in range(500)), 11),
        ("b", "unverified", 3, 21, 22),
    ]
    assert catalog.read(KIND, DATASET, "a") == point("a", 1, objects=500)
    catalog.mark_verification(point("b", 2, base="a"), state="verified", checks=["restore"])
    assert stored_index(catalog).get("b").state == "verified"  # type: ignore[union-attr]


def test_monitor_reads_one_object_per_dataset_whatever_the_history(catalog: Catalog) -> None:
    for hour in range(60):
        catalog.write(point(f"p{hour:03d}", hour, state="failed" if hour == 59 else "verified"))
    counting = Counting(catalog.s3.client)
    newest = catalog.latest_verified_summary(KIND, DATASET)
    assert newest is not None and newest.recovery_point_id == "p058"
    assert counting.calls == ["GetObject"]
    assert catalog.age_of_newest_verified(KIND, DATASET, now=T0 + timedelta(hours=60)) == 2 * 3600


def test_hot_paths_fetch_only_the_manifests_they_use(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    for hour in range(2, 40):
        catalog.write(point(f"i{hour:02d}", hour, base="a"))
    counting = Counting(catalog.s3.client)
    listing = catalog.list_points(KIND, DATASET)
    assert counting.calls == ["GetObject", "ListObjectsV2"]  # the index, then the folder's listing
    counting.reset()
    newest = catalog.latest_verified(KIND, DATASET)
    assert newest is not None and newest.recovery_point_id == "i39" and len(newest.objects) == 3
    # index + listing, then the chosen manifest and its object list
    assert sorted(counting.calls) == ["GetObject", "GetObject", "GetObject", "ListObjectsV2"]
    counting.reset()
    chain = catalog.chain(listing.manifest("i20"), listing=listing)
    assert [m.recovery_point_id for m in chain] == ["a", "i20"]
    # i20 and a, each manifest and object list, and a's chain file (none: verify writes it)
    assert counting.calls.count("GetObject") == 5


def test_failure_reaches_dependents_in_manifests_and_index(catalog: Catalog) -> None:
    catalog.write(point("full", 1))
    catalog.write(point("inc1", 2, base="full"))
    catalog.write(point("inc2", 3, base="inc1"))
    catalog.write(point("other", 4))
    catalog.mark_verification(
        point("inc1", 2, base="full"), state="failed", checks=["restore"], detail="rows differ"
    )
    index = stored_index(catalog)
    assert {e.recovery_point_id: e.own_state for e in index.entries} == {
        "full": "verified",
        "inc1": "failed",
        "inc2": "failed",
        "other": "verified",
    }
    assert catalog.read(KIND, DATASET, "inc2").verification.detail == "chain member inc1 failed: rows differ"
    assert catalog.latest_verified_summary(KIND, DATASET).recovery_point_id == "other"  # type: ignore[union-attr]
    assert catalog.check_index(KIND, DATASET) == []


def test_a_missing_index_is_built_on_first_use_and_a_corrupt_one_rebuilt(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    catalog.write(point("warn", 2))
    catalog.s3.client.delete_object(Bucket=BUCKET, Key=INDEX_KEY)
    newest = catalog.latest_verified_summary(KIND, DATASET)
    assert newest is not None and newest.retention_warning == "topic retention 1 h"
    assert [e.recovery_point_id for e in stored_index(catalog).entries] == ["a", "warn"]
    catalog.s3.client.put_object(
        Bucket=BUCKET, Key=INDEX_KEY, Body=b'{"format": "backup-pipelines.catalog-ind'
    )
    assert catalog.check_index(KIND, DATASET)[0].startswith(
        f"catalog index s3://{BUCKET}/{INDEX_KEY} has no usable head"
    )
    assert [p.recovery_point_id for p in catalog.list_points(KIND, DATASET).points] == ["a", "warn"]
    assert catalog.check_index(KIND, DATASET) == []


def test_manifests_changed_behind_the_index_are_found_by_the_listing(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    catalog.write(point("b", 2))
    client = catalog.s3.client
    # By hand: a new point, a point failed, one deleted, and a truncated manifest.
    client.put_object(Bucket=BUCKET, Key=catalog.key_for(KIND, DATASET, "c"), Body=point("c", 3).to_json())
    failed = json.loads(point("a", 1).to_json())
    failed["verification"] = {"state": "failed", "detail": "edited by hand"}
    client.put_object(Bucket=BUCKET, Key=catalog.key_for(KIND, DATASET, "a"), Body=json.dumps(failed))
    client.delete_object(Bucket=BUCKET, Key=catalog.key_for(KIND, DATASET, "b"))
    client.put_object(
        Bucket=BUCKET, Key=catalog.key_for(KIND, DATASET, "t"), Body=point("t", 9).to_json()[:50]
    )
    differences = catalog.check_index(KIND, DATASET)
    assert len(differences) == 4, differences
    assert any(
        d.startswith("a: the index differs from the manifest in own_state ('verified', manifest 'failed')")
        for d in differences
    )
    listing = catalog.list_points(KIND, DATASET)
    assert [(e.recovery_point_id, e.state) for e in listing.entries] == [("a", "failed"), ("c", "verified")]
    assert [i.key.rsplit("/", 1)[1] for i in listing.invalid] == ["t.json"]
    assert "not valid JSON" in listing.invalid[0].reason
    assert catalog.check_index(KIND, DATASET) == []


def test_a_rewrite_replaces_the_object_list_and_a_delete_removes_everything(catalog: Catalog) -> None:
    catalog.write(point("a", 1, objects=2))
    catalog.write(point("a", 1, objects=4))
    keys = {o.key for o in catalog.s3.iter_objects(BUCKET, f"catalog/{KIND}/{DATASET}/")}
    objects_files = [k for k in keys if "/_objects/" in k]
    assert len(objects_files) == 1
    assert len(catalog.read(KIND, DATASET, "a").objects) == 4
    assert stored_index(catalog).get("a").revision == 2  # type: ignore[union-attr]
    catalog.delete(point("a", 1))
    assert {o.key for o in catalog.s3.iter_objects(BUCKET, "catalog/")} == {INDEX_KEY}
    assert stored_index(catalog).entries == []


def test_a_lost_race_is_retried_on_the_index_as_it_now_is(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.write(point("a", 1))
    put = catalog.s3.put_encrypted
    sneaked: list[str] = []

    def racing(bucket: str, key: str, body: bytes, **kwargs: Any) -> str:
        if key == INDEX_KEY and not sneaked:  # another writer updates the index first
            sneaked.append(key)
            other = Catalog(catalog.s3, bucket=BUCKET)
            monkeypatch.setattr(catalog.s3, "put_encrypted", put)
            other.write(point("b", 2))
            monkeypatch.setattr(catalog.s3, "put_encrypted", racing)
        return put(bucket, key, body, **kwargs)

    monkeypatch.setattr(catalog.s3, "put_encrypted", racing)
    catalog.write(point("c", 3))
    assert [e.recovery_point_id for e in stored_index(catalog).entries] == ["a", "b", "c"]


def test_an_index_write_that_keeps_losing_names_the_index_and_the_fix(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.core import index_store
    from backup_pipelines.core.errors import CatalogIndexError

    catalog.write(point("a", 1))
    put = catalog.s3.put_encrypted
    monkeypatch.setattr(index_store, "backoff", lambda attempt: None)

    def always_412(bucket: str, key: str, body: bytes, **kwargs: Any) -> str:
        if key == INDEX_KEY:
            raise ClientError(
                {"Error": {"Code": "PreconditionFailed", "Message": "At least one"}}, "PutObject"
            )
        return put(bucket, key, body, **kwargs)

    monkeypatch.setattr(catalog.s3, "put_encrypted", always_412)
    with pytest.raises(
        CatalogIndexError, match=rf"catalog index s3://{BUCKET}/{INDEX_KEY}: 40 conditional writes"
    ):
        catalog.write(point("b", 2))
    assert catalog.read(KIND, DATASET, "b").recovery_point_id == "b"  # the manifest stands
    monkeypatch.setattr(catalog.s3, "put_encrypted", put)
    assert [e.recovery_point_id for e in catalog.list_points(KIND, DATASET).entries] == ["a", "b"]


def test_the_rpo_monitor_pass_reads_the_index_head_alone(catalog: Catalog) -> None:
    from backup_pipelines.monitor.rpo import Target, measure

    catalog.write(point("full", 0))
    for hour in range(1, 80):
        catalog.write(point(f"i{hour:03d}", hour, base="full"))
    catalog.write(point("future", 500))  # a skewed clock: captured after "now"
    now = T0 + timedelta(hours=80)
    catalog.mark_verification(
        point("i079", 79, base="full"), state="failed", checks=["presence"], detail="gone", at=now
    )
    counting = Counting(catalog.s3.client)
    age = measure(catalog, Target(KIND, DATASET, 3600), now=now)
    assert counting.calls == ["GetObject"]
    assert age.newest_id == "i078" and age.age_seconds == 2 * 3600
    assert age.not_counted == ("i079: failed (gone)", "future: verified (None)")
    assert age.warning is not None and "broken chain: recovery point i079 failed at" in age.warning
