"""The object list file: its bytes (content-addressed, so they must not change with the code)."""

from __future__ import annotations

import json

from support.catalog import manifest

from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.core.manifest_store import objects_body


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
