"""The archive file format: records round-trip whole, files split by size, offsets must increase."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_pipelines.kafka.parquet import ms_to_datetime, read_records
from backup_pipelines.kafka.writer import PartitionArchiveWriter


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


def test_row_groups_span_converted_chunks_and_the_index_covers_them(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    # Timestamps out of order and some missing: the index must hold the true min and max.
    files: list = []
    writer = PartitionArchiveWriter(
        topic="t", partition=0, on_file=files.append, spool_dir=tmp_path, row_group_rows=250, chunk_rows=64
    )
    stamps = [None if i % 7 == 0 else 5_000 - (i * 37) % 1_000 for i in range(1_000)]
    for i, ts in enumerate(stamps):
        writer.add(i, 0 if ts is None else 1, ts, b"k", b"v" * 10, [("h", b"x")])
    writer.close()
    (archive,) = files
    row_groups = pq.ParquetFile(archive.path).metadata
    assert [row_groups.row_group(g).num_rows for g in range(row_groups.num_row_groups)] == [250] * 4
    present = [ts for ts in stamps if ts is not None]
    assert (archive.min_timestamp_ms, archive.max_timestamp_ms) == (min(present), max(present))
    assert archive.first_timestamp_ms is None and archive.last_timestamp_ms == stamps[-1]
    assert (archive.first_offset, archive.last_offset, archive.records) == (0, 999, 1_000)
    # 16 per record + key (1) + value (10) + header name (1) and value (1)
    assert archive.raw_bytes == 1_000 * (16 + 1 + 10 + 1 + 1)
    assert [r.timestamp_ms for r in read_records(archive.path)] == stamps


def test_a_large_message_flushes_the_row_group_early(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    files: list = []
    writer = PartitionArchiveWriter(
        topic="t", partition=0, on_file=files.append, spool_dir=tmp_path, row_group_bytes=50_000
    )
    for i in range(10):
        writer.add(i, 1, i, None, b"v" * 20_000, None)
    writer.close()
    metadata = pq.ParquetFile(files[0].path).metadata
    assert metadata.num_row_groups > 1
    assert all(metadata.row_group(g).num_rows <= 3 for g in range(metadata.num_row_groups))


def test_timestamps_beyond_what_a_datetime_holds_are_archived_and_read_back(tmp_path: Path) -> None:
    # CreateTime is any int64 a producer sets; year 10000 and before 1970 must not break a partition.
    stamps = [253_402_300_800_000, -86_400_000, 1_700_000_000_000]
    files: list = []
    writer = PartitionArchiveWriter(topic="t", partition=0, on_file=files.append, spool_dir=tmp_path)
    for offset, ts in enumerate(stamps):
        writer.add(offset, 1, ts, b"k", b"v", None)
    writer.close()
    (archive,) = files
    assert (archive.min_timestamp_ms, archive.max_timestamp_ms) == (-86_400_000, 253_402_300_800_000)
    assert [r.timestamp_ms for r in read_records(archive.path)] == stamps
    # The manifest index holds datetimes: clamped, still ordered.
    assert ms_to_datetime(archive.max_timestamp_ms).year == 9999
    assert ms_to_datetime(-86_400_000) == datetime(1969, 12, 31, tzinfo=UTC)
