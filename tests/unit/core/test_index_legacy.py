"""Migration: a catalog written before the index (schema 1 manifests with their objects inside, no
index; the real manifests of ``tests/fixtures/catalog_v1``) keeps working: the index is built on
first use, and a point re-marked afterwards is stored as schema 2 with its objects in their file."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support.catalog import moto_catalog
from support.paths import ROOT

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.index import INDEX_NAME

FIXTURE = ROOT / "tests" / "fixtures" / "catalog_v1"
BUCKET = "analytics-backups"
CH = ("clickhouse_snapshot", "analytics")


@pytest.fixture
def legacy() -> Iterator[Catalog]:
    with moto_catalog(BUCKET) as catalog:
        for obj in json.loads((FIXTURE / "objects.json").read_text()):
            if obj["bucket"] == BUCKET and obj["key"].startswith("catalog/"):
                body = (FIXTURE / obj["bucket"] / obj["key"]).read_bytes()
                catalog.s3.client.put_object(Bucket=BUCKET, Key=obj["key"], Body=body)
        yield catalog


def test_the_index_is_built_on_first_use_from_v1_manifests(legacy: Catalog) -> None:
    client = legacy.s3.client
    assert not [o for o in legacy.s3.iter_objects(BUCKET, "catalog/") if o.key.endswith(INDEX_NAME)]
    newest = legacy.latest_verified_summary(*CH)
    assert newest is not None and newest.recovery_point_id == "20261129T0400Z" and newest.schema_version == 1
    assert newest.objects > 0 and newest.bytes > 0 and newest.base == "20261129T0300Z"
    client.head_object(Bucket=BUCKET, Key=f"catalog/{CH[0]}/{CH[1]}/{INDEX_NAME}")  # written
    chain = legacy.chain(legacy.read(*CH, "20261129T0400Z"))
    assert [m.recovery_point_id for m in chain] == ["20261129T0200Z", "20261129T0300Z", "20261129T0400Z"]
    archive = legacy.list_points("kafka_archive", "events")
    assert [e.recovery_point_id for e in archive.entries] == ["20261123T040000Z"]
    assert archive.manifest("20261123T040000Z").objects[0].sha256
    assert legacy.check_index(*CH) == []


def test_a_v1_point_re_marked_is_stored_as_v2_and_reads_the_same(legacy: Catalog) -> None:
    before = legacy.read(*CH, "20261129T0300Z")
    legacy.mark_verification(before, state="verified", checks=["drill restore"])
    key = legacy.key_for(*CH, "20261129T0300Z")
    raw = json.loads(legacy.s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert raw["schema_version"] == 2 and raw["objects"] == [] and raw["object_count"] == len(before.objects)
    after = legacy.read(*CH, "20261129T0300Z")
    assert after.objects == before.objects and after.verification.checks == ["drill restore"]
    assert legacy.check_index(*CH) == []
