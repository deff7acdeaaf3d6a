"""The object list file: its bytes (content-addressed, so they must not change with the code)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from support.catalog import manifest

from backup_pipelines.core.manifest import Manifest, ObjectEntry
from backup_pipelines.core.manifest_store import write_objects


def objects_body(point: Manifest) -> bytes:
    """The object list file's bytes, as ``write_objects`` streams them."""
    out = io.BytesIO()
    write_objects(point, out)
    return out.getvalue()


def test_the_object_list_is_the_compact_json_of_every_entry_byte_for_byte() -> None:
    """The same bytes as dumping the whole list at once (names are a hash of them): non-ASCII and
    quoted keys, empty and absent fields, many entries."""
    objects = [
        ObjectEntry(key='emr/dt=2026-01-01/naïve "quoted"\\path/part-0.parquet', size=0),
        ObjectEntry(key="emr/dt=2026-01-01/日本語.parquet", size=7, etag="abc", sha256="ZmFrZQ=="),
        *(ObjectEntry(key=f"emr/dt=2026-01-01/part-{i:05d}.parquet", size=i) for i in range(2000)),
    ]
    point = manifest("dt=2026-01-01", kind="emr_output", dataset="job", objects=objects)
    expected = json.dumps(
        {
            "recovery_point_id": point.recovery_point_id,
            "objects": [o.model_dump(mode="json", exclude_none=True) for o in point.objects],
        },
        separators=(",", ":"),
    ).encode()
    body = objects_body(point)
    assert body == expected
    assert [o["key"] for o in json.loads(body)["objects"]][:2] == [objects[0].key, objects[1].key]


def test_an_object_list_larger_than_the_spool_is_stored_from_a_file_whole_and_named_by_its_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``SPOOL_BYTES`` the list goes through a temporary file (never held whole in memory):
    S3 receives every byte, the SHA-256 S3 checks is the written file's, the name is its hash."""
    import hashlib

    from support.catalog import moto_catalog

    from backup_pipelines.core import manifest_store

    monkeypatch.setattr(manifest_store, "SPOOL_BYTES", 4096)
    spilled: list[bool] = []
    spooled = manifest_store.tempfile.SpooledTemporaryFile

    class Watched(spooled):  # type: ignore[misc,valid-type]
        def seek(self, *args: Any) -> int:
            spilled.append(bool(self._rolled))
            return int(super().seek(*args))

    monkeypatch.setattr(manifest_store.tempfile, "SpooledTemporaryFile", Watched)
    objects = [
        ObjectEntry(key=f"emr/dt=2026-01-01/part-{i:05d}-ü.parquet", size=i, etag="e") for i in range(500)
    ]
    point = manifest("dt=2026-01-01", kind="emr_output", dataset="job", objects=objects)
    with moto_catalog("spool") as catalog:
        catalog.write(point)
        stored = catalog.read("emr_output", "job", "dt=2026-01-01")
        keys = [o.key for o in catalog.s3.iter_objects("spool", "catalog/emr_output/job/_objects/")]
        body = catalog.s3.client.get_object(Bucket="spool", Key=keys[0])["Body"].read()
    assert spilled and spilled[0], "the list should have spilled to a file"
    assert body == objects_body(point) and len(body) > 4096
    assert keys == [
        f"catalog/emr_output/job/_objects/dt=2026-01-01.{hashlib.sha256(body).hexdigest()[:16]}.json"
    ]
    assert stored.objects == point.objects


def test_a_file_body_without_its_sha256_is_refused_before_any_request() -> None:
    import io

    from support.catalog import moto_catalog

    from backup_pipelines.core.config import Encryption

    with moto_catalog("nosha") as catalog, pytest.raises(TypeError, match="needs its sha256"):
        catalog.s3.put_encrypted("nosha", "k", io.BytesIO(b"x"), encryption=Encryption())
