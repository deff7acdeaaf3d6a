"""The archive file format: records round-trip whole, files split by size, offsets must increase."""

from __future__ import annotations

import itertools
import random
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


def test_batches_make_the_same_files_byte_for_byte_as_records_one_by_one(tmp_path: Path) -> None:
    """The archive hands the writer consumed batches (``add_columns``): chunks, row groups (by
    count and by bytes) and file splits must be those of adding the records one at a time, so the
    same input always gives the same files and manifest."""
    from backup_pipelines.core.checksums import file_sha256
    from backup_pipelines.kafka.parquet import RecordColumns

    noise = random.Random(5)
    rows = []
    offset = 1_000
    for i in range(3_000):
        big = i % 97 == 0  # large values trip the row group's byte limit mid-batch
        offset += 2 if i % 11 == 0 else 1  # jumps, as over transaction markers
        rows.append(
            (
                offset,
                (0, -1) if i % 13 == 0 else (1, [-1, 2**62, 1_700_000_000_000 + i][i % 3]),
                None if i % 17 == 0 else b"k%d" % i,
                noise.randbytes(5_000 if big else i % 50) if i % 19 else None,
                None if i % 7 == 0 else [("h", b"%d" % i), ("h", None)],
            )
        )
    offsets, stamps, keys, values, headers = (list(col) for col in zip(*rows, strict=True))
    settings = {"file_max_bytes": 30_000, "row_group_rows": 300, "row_group_bytes": 9_000, "chunk_rows": 64}

    def write(name: str, feed: object) -> list:
        files: list = []
        folder = tmp_path / name
        writer = PartitionArchiveWriter(
            topic="t", partition=1, on_file=files.append, spool_dir=folder, **settings
        )
        feed(writer)  # type: ignore[operator]
        writer.close()
        return files

    def one_by_one(writer: PartitionArchiveWriter) -> None:
        for offset, (kind, ts), key, value, hdrs in rows:
            writer.add(offset, kind, ts if kind else None, key, value, hdrs)

    def in_batches(writer: PartitionArchiveWriter) -> None:
        i = 0
        for size in itertools.cycle([1, 250, 7, 1_000, 33]):
            if i >= len(rows):
                break
            writer.add_columns(
                RecordColumns(offsets[i : i + size], stamps[i : i + size], keys[i : i + size],
                              values[i : i + size], headers[i : i + size])
            )  # fmt: skip
            i += size

    expected, actual = write("records", one_by_one), write("batches", in_batches)
    assert len(expected) > 3, "the data must split into several files"
    assert [(f.first_offset, f.last_offset, f.records, f.raw_bytes) for f in actual] == [
        (f.first_offset, f.last_offset, f.records, f.raw_bytes) for f in expected
    ]
    assert [file_sha256(f.path) for f in actual] == [file_sha256(f.path) for f in expected]
    assert [r.offset for f in actual for r in read_records(f.path)] == offsets


def test_records_stamped_outside_the_window_are_counted(tmp_path: Path) -> None:
    writer = PartitionArchiveWriter(
        topic="t", partition=0, on_file=lambda f: None, spool_dir=tmp_path, window_ms=(1_000, 2_000)
    )
    for offset, (kind, ts) in enumerate(
        [(1, 999), (1, 1_000), (1, 1_999), (1, 2_000), (1, -1), (0, -1), (1, 2**62)]
    ):
        writer.add(offset, kind, ts if kind else None, b"k", b"v", None)
    writer.close()
    assert writer.outside_window == {"before": 1, "after": 2, "none": 2}
