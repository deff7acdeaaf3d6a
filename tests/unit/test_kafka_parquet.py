"""The archive file format: records round-trip whole, files split by size, offsets must increase."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from backup_pipelines.kafka_parquet import PartitionArchiveWriter, read_records


def _write(tmp_path: Path, n: int, **kwargs: object) -> list:
    files: list = []
    writer = PartitionArchiveWriter(
        topic="t", partition=2, on_file=files.append, spool_dir=tmp_path, **kwargs
    )
    for i in range(n):
        headers = (
            [("seq", str(i).encode()), ("dup", b"a"), ("dup", None)] if i % 3 else ([] if i % 2 else None)
        )
        writer.add(
            10 + i,
            1 if i % 5 else 0,
            1_700_000_000_000 + i,
            None if i == 4 else b"k%d" % i,
            None if i == 6 else b"v" * (i % 40),
            headers,
        )
    writer.close()
    return files


def test_records_round_trip_whole(tmp_path: Path) -> None:
    files = _write(tmp_path, 50)
    records = [r for f in files for r in read_records(f.path)]
    assert [r.offset for r in records] == list(range(10, 60))
    assert records[4].key is None and records[6].value is None
    assert records[0].timestamp_type == 0 and records[0].timestamp_ms is None  # type 0: no timestamp
    assert records[1].timestamp_ms == 1_700_000_000_001
    assert records[1].headers == [("seq", b"1"), ("dup", b"a"), ("dup", None)]
    assert records[0].headers is None and records[3].headers == []


def test_files_split_at_the_size_limit_and_index_their_offsets(tmp_path: Path) -> None:
    files = _write(tmp_path, 2_000, file_max_bytes=4096, row_group_rows=100)
    assert len(files) > 2
    assert files[0].first_offset == 10 and files[-1].last_offset == 2_009
    for a, b in itertools.pairwise(files):
        assert b.first_offset == a.last_offset + 1
    assert sum(f.records for f in files) == 2_000


def test_offsets_must_increase(tmp_path: Path) -> None:
    writer = PartitionArchiveWriter(topic="t", partition=0, on_file=lambda f: None, spool_dir=tmp_path)
    writer.add(5, 1, 1, b"k", b"v", None)
    with pytest.raises(ValueError, match=r"t\[0\]: offset 5 after 5"):
        writer.add(5, 1, 1, b"k", b"v", None)
    writer.abort()
    assert not list(tmp_path.iterdir())
