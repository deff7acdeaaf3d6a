"""The archive's overlapped stages: a failure in any of them fails the archive with that error (not
a knock-on one), stops the others and leaves no local file; files are uploaded in order and are
byte for byte those of the writer run alone; each stage's cost is reported."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_pipelines.core.errors import OffsetGapError
from backup_pipelines.kafka.archive import archive_partition
from backup_pipelines.kafka.cursor import ReadResult
from backup_pipelines.kafka.parquet import ArchiveFile, RecordColumns, read_records
from backup_pipelines.kafka.writer import PartitionArchiveWriter


class _Kafka:
    """``read_batches`` of 30 batches of 100 records with 200-byte values; ``fail_at``: the batch
    before which the read fails (as a broker error would)."""

    def __init__(self, fail_at: int | None = None, *, offsets_back: bool = False) -> None:
        self.fail_at = fail_at
        self.offsets_back = offsets_back

    def read_batches(
        self, topic: str, partition: int, start: int, result: ReadResult, **_: Any
    ) -> Iterator[Any]:
        for batch in range(30):
            if batch == self.fail_at:
                raise OffsetGapError(f"{topic}[{partition}]: offsets deleted under the reader")
            first = start + batch * 100 - (150 if self.offsets_back and batch == 3 else 0)
            offsets = list(range(first, first + 100))
            yield RecordColumns(offsets, [(1, 1_000 + o) for o in offsets], [b"k"] * 100,
                                [bytes(200)] * 100, [None] * 100)  # fmt: skip
            result.records += 100
        result.end_offset, result.stopped_by = start + 3_000, "cut"


def _archive(spool: Path, kafka: _Kafka, upload: Any) -> tuple[ReadResult, list[dict[str, Any]]]:
    return archive_partition(
        kafka,  # type: ignore[arg-type]
        topic="t",
        partition=0,
        start_offset=0,
        end_offset=3_000,
        upload=upload,
        file_max_bytes=4_096,
        row_group_rows=100,
        spool_dir=spool,
    )


def test_files_are_uploaded_in_order_while_the_read_goes_on(tmp_path: Path) -> None:
    seen: list[int] = []

    def upload(f: ArchiveFile) -> dict[str, Any]:
        assert f.path.exists()
        seen.append(f.first_offset)
        return {"first": f.first_offset, "last": f.last_offset}

    result, entries = _archive(tmp_path, _Kafka(), upload)
    assert result.records == 3_000 and len(entries) > 3
    assert seen == sorted(seen) and [e["first"] for e in entries] == seen
    assert entries[-1]["last"] == 2_999 and list(tmp_path.iterdir()) == []


def test_an_upload_that_fails_fails_the_archive_with_its_error_and_leaves_no_file(tmp_path: Path) -> None:
    calls: list[int] = []

    def upload(f: ArchiveFile) -> dict[str, Any]:
        calls.append(f.first_offset)
        if len(calls) == 2:
            raise KeyboardInterrupt("worker killed mid-upload")
        return {}

    with pytest.raises(KeyboardInterrupt, match="worker killed mid-upload"):
        _archive(tmp_path, _Kafka(), upload)
    assert len(calls) == 2, "no upload after the failed one"
    assert list(tmp_path.iterdir()) == []


def test_a_read_that_fails_stops_the_writer_and_the_uploads(tmp_path: Path) -> None:
    uploads: list[int] = []
    with pytest.raises(OffsetGapError, match="offsets deleted under the reader"):
        _archive(tmp_path, _Kafka(fail_at=12), lambda f: uploads.append(f.first_offset) or {})
    assert list(tmp_path.iterdir()) == []
    assert all(first < 1_200 for first in uploads)


def test_a_writer_that_fails_fails_the_archive_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"t\[0\]: offset 150 after 299; records must arrive in increasing"):
        _archive(tmp_path, _Kafka(offsets_back=True), lambda f: {})
    assert list(tmp_path.iterdir()) == []


def _varied_batches() -> list[RecordColumns]:
    """3,000 records unlike the demo's, in batches of uneven sizes: offset jumps (as over
    transaction markers), values from empty to 5 kB (they trip the row group's byte limit mid-batch),
    null keys, values and headers, duplicate headers with null values, skewed and missing stamps."""
    noise = random.Random(11)
    rows, offset = [], 500
    for i in range(3_000):
        offset += 3 if i % 23 == 0 else 1
        stamp = (0, -1) if i % 13 == 0 else (1, [2**62, 1_000, 1_700_000_000_000 + i][i % 3])
        value = None if i % 19 == 0 else noise.randbytes(5_000 if i % 97 == 0 else i % 60)
        headers = None if i % 7 == 0 else [("h", b"%d" % i), ("h", None)] if i % 5 else []
        rows.append((offset, stamp, None if i % 17 == 0 else b"k%d" % i, value, headers))
    batches, i = [], 0
    for size in itertools.cycle([1, 250, 7, 1_000, 33]):
        if i >= len(rows):
            return batches
        columns = [list(col) for col in zip(*rows[i : i + size], strict=True)]
        batches.append(RecordColumns(*columns))
        i += size
    return batches


class _Batches:
    """``read_batches`` of the given batches, as the consuming thread hands them over."""

    def __init__(self, batches: list[RecordColumns]) -> None:
        self.batches = batches

    def read_batches(
        self, topic: str, partition: int, start: int, result: ReadResult, **_: Any
    ) -> Iterator[Any]:
        for columns in self.batches:
            result.records += len(columns)
            yield columns
        result.end_offset, result.stopped_by = self.batches[-1].offsets[-1] + 1, "cut"


def test_the_staged_archive_writes_the_same_files_byte_for_byte_as_the_writer_alone(tmp_path: Path) -> None:
    """Four threads (consume, convert, write, upload) must not change a byte: the same input gives
    the files, index entries and window counts of the writer run in one thread, in the same order."""
    batches = _varied_batches()
    window = (1_000, 1_700_000_001_000)
    settings = {"file_max_bytes": 30_000, "row_group_rows": 300}
    alone: list[ArchiveFile] = []
    writer = PartitionArchiveWriter(
        topic="t",
        partition=3,
        on_file=alone.append,
        spool_dir=tmp_path / "alone",
        window_ms=window,
        **settings,
    )
    for columns in batches:
        writer.add_columns(columns)
    writer.close()

    uploaded = tmp_path / "uploaded"
    uploaded.mkdir()

    def upload(f: ArchiveFile) -> dict[str, Any]:
        (uploaded / f.name()).write_bytes(f.path.read_bytes())
        return {"name": f.name(), "sha256": f.sha256, "records": f.records, "raw": f.raw_bytes}

    result, entries = archive_partition(
        _Batches(batches),  # type: ignore[arg-type]
        topic="t",
        partition=3,
        start_offset=501,
        end_offset=None,
        upload=upload,
        spool_dir=tmp_path / "spool",
        window_ms=window,
        **settings,  # type: ignore[arg-type]
    )
    assert len(alone) > 5, "the data must split into several files"
    assert entries == [
        {"name": f.name(), "sha256": f.sha256, "records": f.records, "raw": f.raw_bytes} for f in alone
    ]
    for f in alone:
        assert (uploaded / f.name()).read_bytes() == f.path.read_bytes(), f.name()
    assert result.outside_window == writer.outside_window and sum(result.outside_window.values()) > 0
    assert [r.offset for f in alone for r in read_records(uploaded / f.name())] == [
        o for columns in batches for o in columns.offsets
    ]
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_failed_write_fails_the_archive_with_its_error_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills while a row group is compressed and written (the spool's thread): that
    error, not a knock-on one, and nothing left on disk."""
    from backup_pipelines.kafka.spool import ParquetSpool

    real, calls = ParquetSpool.write, []

    def write(spool: ParquetSpool, group: Any) -> None:
        calls.append(group.rows)
        if len(calls) == 8:
            raise OSError(28, "No space left on device")
        real(spool, group)

    monkeypatch.setattr(ParquetSpool, "write", write)
    uploads: list[int] = []
    with pytest.raises(OSError, match="No space left on device"):
        _archive(tmp_path, _Kafka(), lambda f: uploads.append(f.first_offset) or {})
    assert list(tmp_path.iterdir()) == []
    assert len(calls) == 8 and all(first < 700 for first in uploads)


def test_each_stage_tells_its_cost_and_which_one_held_the_others_up(tmp_path: Path) -> None:
    """A slow upload: the write stage waited on it, and the stages' costs say so."""

    def upload(f: ArchiveFile) -> dict[str, Any]:
        time.sleep(0.2)
        return {}

    result, entries = _archive(tmp_path, _Kafka(), upload)
    assert len(entries) > 3
    stages = result.stages
    assert list(stages) == ["consume", "convert", "write", "upload", "all"]
    assert all(stages[name]["cpu_s"] >= 0 for name in ("consume", "convert", "write", "upload"))
    assert stages["write"]["waited_s"] > 0.2, stages
    assert stages["upload"]["waited_s"] == 0
    assert stages["all"]["wall_s"] >= 0.2 * len(entries)
