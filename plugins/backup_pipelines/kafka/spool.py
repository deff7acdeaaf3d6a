"""Row groups into size-bounded Parquet files on local disk (the spool), one after the other.

A row group (Arrow batches of one partition's records, and what the file index needs of them) is
compressed and written whole; a file is closed once it reaches ``file_max_bytes`` and handed to
``on_file`` with its index (offsets, time range, count, SHA-256). Writing releases the GIL, so in
the archive this runs in a thread of its own while the next row group is converted.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_pipelines.core.checksums import file_sha256
from backup_pipelines.kafka.parquet import COMPRESSION, ArchiveFile

log = logging.getLogger(__name__)


@dataclass
class RowGroup:
    """The Arrow batches of one row group, and what the file index needs of them."""

    batches: list[Any] = field(default_factory=list)
    rows: int = 0
    raw_bytes: int = 0  # exact, summed per converted batch
    estimated_bytes: int = 0  # cheap running estimate, for the flush trigger
    first_offset: int | None = None
    first_timestamp: int | None = None
    last_offset: int | None = None
    last_timestamp: int | None = None
    min_timestamp: int | None = None
    max_timestamp: int | None = None


@dataclass
class _OpenFile:
    path: Path
    writer: Any
    first: int | None = None
    first_ts: int | None = None
    last: int | None = None
    last_ts: int | None = None
    records: int = 0
    raw: int = 0
    tmin: int | None = None
    tmax: int | None = None

    def add(self, group: RowGroup) -> None:
        if self.first is None:
            self.first, self.first_ts = group.first_offset, group.first_timestamp
        self.last, self.last_ts = group.last_offset, group.last_timestamp
        self.records += group.rows
        self.raw += group.raw_bytes
        if group.min_timestamp is not None and group.max_timestamp is not None:
            self.tmin = group.min_timestamp if self.tmin is None else min(self.tmin, group.min_timestamp)
            self.tmax = group.max_timestamp if self.tmax is None else max(self.tmax, group.max_timestamp)


class ParquetSpool:
    """Writes row groups into Parquet files of about ``file_max_bytes``; each closed file goes to
    ``on_file`` (which uploads and may delete it) before the next one is opened."""

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        schema: Any,
        memory_pool: Any,
        on_file: Callable[[ArchiveFile], None],
        file_max_bytes: int,
        spool_dir: Path | str | None = None,
        compression_level: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.schema = schema
        self.memory_pool = memory_pool
        self.on_file = on_file
        self.file_max_bytes = file_max_bytes
        self.spool_dir = Path(spool_dir or tempfile.gettempdir())
        self.compression_level = compression_level
        self.files: list[ArchiveFile] = []
        self._open: _OpenFile | None = None

    def write(self, group: RowGroup) -> None:
        """Write one row group; close the file when it has reached the size limit."""
        import pyarrow as pa

        current = self._open or self._new_file()
        current.writer.write_table(
            pa.Table.from_batches(group.batches, self.schema), row_group_size=group.rows
        )
        current.add(group)
        if current.path.stat().st_size >= self.file_max_bytes:
            self._close_file()

    def _new_file(self) -> _OpenFile:
        import pyarrow.parquet as pq

        self.spool_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f"kafka-{self.partition}-", suffix=".parquet", dir=self.spool_dir
        )
        os.close(handle)
        writer = pq.ParquetWriter(
            name,
            self.schema,
            compression=COMPRESSION,
            compression_level=self.compression_level,
            use_dictionary=["topic"],
            write_statistics=["offset", "timestamp"],
            memory_pool=self.memory_pool,
        )
        self._open = _OpenFile(Path(name), writer)
        return self._open

    def _close_file(self) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        current.writer.close()
        assert current.first is not None and current.last is not None
        archive_file = ArchiveFile(
            path=current.path,
            partition=self.partition,
            first_offset=current.first,
            last_offset=current.last,
            records=current.records,
            first_timestamp_ms=current.first_ts,
            last_timestamp_ms=current.last_ts,
            min_timestamp_ms=current.tmin,
            max_timestamp_ms=current.tmax,
            size=current.path.stat().st_size,
            sha256=file_sha256(current.path),
            raw_bytes=current.raw,
        )
        log.info(
            "%s[%d]: closed archive file %s (%d records, %d bytes, %d raw bytes)",
            self.topic,
            self.partition,
            archive_file.name(),
            archive_file.records,
            archive_file.size,
            archive_file.raw_bytes,
        )
        self.files.append(archive_file)
        self.on_file(archive_file)

    def close(self) -> list[ArchiveFile]:
        """Close the last file; returns every file written."""
        self._close_file()
        return self.files

    def abort(self) -> None:
        """Drop the open file (on error), leaving nothing on local disk."""
        current, self._open = self._open, None
        if current is None:
            return
        try:
            current.writer.close()
        except Exception:  # the original error matters, not this one
            log.debug("closing an aborted archive file failed", exc_info=True)
        current.path.unlink(missing_ok=True)
