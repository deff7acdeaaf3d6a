"""A streaming writer of one topic-partition's records into size-bounded archive files.

Records are held as Python objects only ``chunk_rows`` at a time, converted to compact Arrow
batches, and a row group is handed on (to ``kafka.spool``, which writes it) once it reaches
``row_group_rows`` or ``row_group_bytes``; files are closed at ``file_max_bytes``. Arrow buffers
come from the system allocator, which hands freed row groups back to the OS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_pipelines.kafka.parquet import ArchiveFile, Record, RecordColumns, arrow_schema
from backup_pipelines.kafka.spool import ParquetSpool, RowGroup

log = logging.getLogger(__name__)

# A row group is flushed at this many buffered raw bytes even when it has fewer rows than asked:
# large messages must not blow the memory bound.
DEFAULT_ROW_GROUP_BYTES = 32 * 1024 * 1024
# Records held as Python objects before they are converted to Arrow.
DEFAULT_CHUNK_ROWS = 8_192


@dataclass
class _Chunk:
    """Column lists of the records not yet converted to Arrow (at most ``chunk_rows`` of them)."""

    offsets: list[int] = field(default_factory=list)
    stamps: list[tuple[int, int]] = field(default_factory=list)  # (type, ms); type 0: none
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    headers: list[list[tuple[str, bytes | None]] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def extend(self, columns: RecordColumns, i: int, j: int) -> None:
        self.offsets += columns.offsets[i:j]
        self.stamps += columns.stamps[i:j]
        self.keys += columns.keys[i:j]
        self.values += columns.values[i:j]
        self.headers += columns.headers[i:j]


class PartitionArchiveWriter:
    """Streams the records of one topic-partition into size-bounded Parquet files.

    ``add`` records in offset order (or ``add_columns``, a batch at a time: the same chunks, row
    groups and files); each closed file is handed to ``on_file`` (which uploads and may delete it)
    before the next one starts. With ``on_row_group``, full row groups go there instead of to the
    spool (the archive writes them in another thread).

    Memory: records are held as Python objects only ``chunk_rows`` at a time (several hundred
    bytes each), then converted to compact Arrow batches; a row group is written from those
    batches once it reaches ``row_group_rows`` or ``row_group_bytes``. Arrow buffers come from the
    system allocator, which hands freed row groups back to the OS; Arrow's default pool keeps
    them, and the peak RSS of a long archive grew with it.
    """

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        on_file: Callable[[ArchiveFile], None],
        file_max_bytes: int = 256 * 1024 * 1024,
        row_group_rows: int = 100_000,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        spool_dir: Path | str | None = None,
        compression_level: int | None = None,
        window_ms: tuple[int, int] | None = None,
        on_row_group: Callable[[RowGroup], None] | None = None,
    ) -> None:
        import pyarrow as pa

        self.topic = topic
        self.partition = partition
        self.on_file = on_file
        self.file_max_bytes = file_max_bytes
        self.row_group_rows = row_group_rows
        self.row_group_bytes = min(row_group_bytes, max(file_max_bytes // 2, 1))
        self.chunk_rows = max(1, min(chunk_rows, row_group_rows))
        self.schema = arrow_schema()
        self.records = 0
        self.last_offset: int | None = None
        # Records stamped outside ``window_ms`` ([start, end) in ms): before it, at or after its
        # end, or without a timestamp (type 0, or a negative one such as Kafka's -1).
        self.window_ms = window_ms
        self.outside_window = {"before": 0, "after": 0, "none": 0}
        self._pool = pa.system_memory_pool()
        self._chunk = _Chunk()
        self._group = RowGroup()
        self.spool = ParquetSpool(
            topic=topic,
            partition=partition,
            schema=self.schema,
            memory_pool=self._pool,
            on_file=on_file,
            file_max_bytes=file_max_bytes,
            spool_dir=spool_dir,
            compression_level=compression_level,
        )
        # Where a full row group goes: the spool, or (in the archive) the queue of its thread.
        self.on_row_group = on_row_group or self.spool.write

    # -- writing -------------------------------------------------------------------------------
    def add(  # noqa: PLR0917 - positional on purpose: this is the per-record hot path
        self,
        offset: int,
        timestamp_type: int,
        timestamp_ms: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
    ) -> None:
        if self.last_offset is not None and offset <= self.last_offset:
            raise ValueError(
                f"{self.topic}[{self.partition}]: offset {offset} after {self.last_offset}; "
                "records must arrive in increasing offset order"
            )
        self.last_offset = offset
        chunk = self._chunk
        chunk.offsets.append(offset)
        chunk.stamps.append((timestamp_type, -1 if timestamp_ms is None else timestamp_ms))
        chunk.keys.append(key)
        chunk.values.append(value)
        # Headers go to Arrow as confluent-kafka hands them over: (str, bytes | None) tuples.
        chunk.headers.append(headers)
        group = self._group
        group.estimated_bytes += 16 + (len(key) if key else 0) + (len(value) if value else 0)
        if len(chunk) >= self.chunk_rows or group.rows + len(chunk) >= self.row_group_rows:
            self._convert_chunk()
        if group.rows >= self.row_group_rows or group.estimated_bytes >= self.row_group_bytes:
            self._flush_row_group()

    def add_record(self, record: Record) -> None:
        self.add(
            record.offset,
            record.timestamp_type,
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
        )

    def add_columns(self, columns: RecordColumns) -> None:
        """``add`` for a batch of records in offset order: the same chunks, row groups and files
        as adding them one by one, decided per run of records instead of per record."""
        n = len(columns)
        if not n:
            return
        if self.last_offset is not None and columns.offsets[0] <= self.last_offset:
            raise ValueError(
                f"{self.topic}[{self.partition}]: offset {columns.offsets[0]} after {self.last_offset}; "
                "records must arrive in increasing offset order"
            )
        self.last_offset = columns.offsets[-1]
        i = 0
        while i < n:
            chunk, group = self._chunk, self._group
            # Records until a chunk is converted (add's first test) ...
            take = min(self.chunk_rows - len(chunk), self.row_group_rows - group.rows - len(chunk), n - i)
            # ... and until the estimated bytes reach the row-group limit (add's second test).
            budget = self.row_group_bytes - group.estimated_bytes
            weight = _weight(columns, i, i + take)
            if weight >= budget:
                take, weight = _first_over(columns, i, i + take, budget)
            chunk.extend(columns, i, i + take)
            group.estimated_bytes += weight
            i += take
            if len(chunk) >= self.chunk_rows or group.rows + len(chunk) >= self.row_group_rows:
                self._convert_chunk()
            if group.rows >= self.row_group_rows or group.estimated_bytes >= self.row_group_bytes:
                self._flush_row_group()

    def _convert_chunk(self) -> None:
        """Turn the buffered Python records into one Arrow batch of the current row group."""
        import pyarrow as pa
        import pyarrow.compute as pc

        chunk = self._chunk
        n = len(chunk)
        if not n:
            return
        pool = self._pool
        types = [stamp[0] for stamp in chunk.stamps]
        timestamps: list[int | None] = [stamp[1] for stamp in chunk.stamps]
        if 0 in types:
            timestamps = [ts if kind else None for kind, ts in zip(types, timestamps, strict=True)]
        batch = pa.record_batch(
            [
                pa.array([self.topic] * n, pa.string(), memory_pool=pool),
                pa.array([self.partition] * n, pa.int32(), memory_pool=pool),
                pa.array(chunk.offsets, pa.int64(), memory_pool=pool),
                pa.array(timestamps, pa.timestamp("ms", tz="UTC"), memory_pool=pool),
                pa.array(types, pa.int8(), memory_pool=pool),
                pa.array(chunk.keys, pa.binary(), memory_pool=pool),
                pa.array(chunk.values, pa.binary(), memory_pool=pool),
                pa.array(chunk.headers, self.schema.field("headers").type, memory_pool=pool),
            ],
            schema=self.schema,
        )
        group = self._group
        if group.first_offset is None:
            group.first_offset = chunk.offsets[0]
            group.first_timestamp = timestamps[0]
        group.last_offset = chunk.offsets[-1]
        group.last_timestamp = timestamps[-1]
        # As integers: a producer may set any int64 CreateTime, beyond what datetime can hold.
        stamped = batch.column("timestamp").cast(pa.int64())
        self._count_outside_window(stamped)
        bounds = pc.min_max(stamped).as_py()
        if bounds["min"] is not None:
            lo, hi = int(bounds["min"]), int(bounds["max"])
            group.min_timestamp = lo if group.min_timestamp is None else min(group.min_timestamp, lo)
            group.max_timestamp = hi if group.max_timestamp is None else max(group.max_timestamp, hi)
        group.raw_bytes += _raw_bytes(batch)
        group.rows += n
        group.batches.append(batch)
        self._chunk = _Chunk()

    def _count_outside_window(self, stamped: Any) -> None:
        if self.window_ms is None:
            return
        import pyarrow.compute as pc

        start, end = self.window_ms
        counts = self.outside_window
        negative = pc.sum(pc.less(stamped, 0)).as_py() or 0
        counts["none"] += stamped.null_count + negative
        counts["before"] += (pc.sum(pc.less(stamped, start)).as_py() or 0) - negative
        counts["after"] += pc.sum(pc.greater_equal(stamped, end)).as_py() or 0

    def _flush_row_group(self) -> None:
        self._convert_chunk()
        group = self._group
        if not group.rows:
            return
        self.records += group.rows
        self._group = RowGroup()
        self.on_row_group(group)

    def close(self) -> list[ArchiveFile]:
        """Flush what is buffered and close the last file; returns every file written. (With
        ``on_row_group`` the last row group goes there, and the spool is closed by its owner.)"""
        self._flush_row_group()
        return self.spool.close() if self.on_row_group == self.spool.write else []

    def abort(self) -> None:
        """Drop the open file (on error), leaving nothing on local disk."""
        self.spool.abort()


def _raw_bytes(batch: Any) -> int:
    """Bytes of key, value and headers (names and values) plus 16 per record (offset, timestamp):
    what the records weigh uncompressed, for the compressed-vs-raw ratio."""
    import pyarrow.compute as pc

    def _len(array: Any) -> int:
        total = pc.sum(pc.binary_length(array)).as_py()
        return int(total or 0)

    headers = pc.list_flatten(batch.column("headers"))
    return (
        16 * batch.num_rows
        + _len(batch.column("key"))
        + _len(batch.column("value"))
        + _len(pc.struct_field(headers, "key"))
        + _len(pc.struct_field(headers, "value"))
    )


def _first_over(columns: RecordColumns, i: int, j: int, budget: int) -> tuple[int, int]:
    """How many records from ``i`` on bring the estimate to ``budget``, and their weight."""
    total = 0
    for k in range(i, j):
        key, value = columns.keys[k], columns.values[k]
        total += 16 + len(key or b"") + len(value or b"")
        if total >= budget:
            return k - i + 1, total
    return j - i, total


def _weight(columns: RecordColumns, i: int, j: int) -> int:
    """``add``'s estimate of records ``[i, j)``: 16 bytes each plus key and value."""
    keys = columns.keys[i:j] if j - i < len(columns.keys) else columns.keys
    values = columns.values[i:j] if j - i < len(columns.values) else columns.values
    return 16 * (j - i) + sum(map(len, filter(None, keys))) + sum(map(len, filter(None, values)))
