"""The DR drill's offsets check on an archive file: a jump is a finding unless the manifest
records at least as many offsets without a record (transaction markers, aborted records)."""

from __future__ import annotations

from pathlib import Path

from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.drill.checks import offsets_check
from backup_pipelines.kafka.parquet import read_offsets
from backup_pipelines.kafka.writer import PartitionArchiveWriter


def _archive(tmp_path: Path, offsets: list[int]) -> Path:
    files: list = []
    writer = PartitionArchiveWriter(topic="t", partition=0, on_file=files.append, spool_dir=tmp_path)
    for offset in offsets:
        writer.add(offset, 1, 1_000 + offset, b"k", b"v", None)
    writer.close()
    return files[0].path


def test_a_jump_the_manifest_records_passes_and_an_unrecorded_one_fails(tmp_path: Path) -> None:
    offsets = [*range(5), *range(6, 11)]  # offset 5 is a transaction's commit marker
    path = _archive(tmp_path, offsets)
    entry = ObjectEntry(key="k", size=1, partition=0, first_offset=0, last_offset=10, records=10)
    url = "s3://bucket/k"

    recorded = offsets_check(url, entry, path, read_offsets, 1)
    assert recorded.status == "passed" and recorded.detail == "0..10"

    unrecorded = offsets_check(url, entry, path, read_offsets, 0)
    assert unrecorded.status == "failed"
    assert unrecorded.detail == (
        "offsets jump from 4 to 6 (1 gap(s), 1 offset(s) skipped; the manifest records 0 without a record)"
    )
