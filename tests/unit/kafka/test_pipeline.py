"""The archive's overlapped stages: a failure in any of them fails the archive with that error (not
a knock-on one), stops the others and leaves no local file; files are uploaded in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_pipelines.core.errors import OffsetGapError
from backup_pipelines.kafka.archive import archive_partition
from backup_pipelines.kafka.cursor import ReadResult
from backup_pipelines.kafka.parquet import ArchiveFile, RecordColumns


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
