"""Kafka records <-> Arrow: the archive file format (schema, records, files) and reading it back.

Every record is stored whole so it can be replayed byte for byte: topic, partition, offset,
timestamp and its type, key, value and headers (in order, duplicates kept, null values kept).
Files are zstd-compressed Parquet; ``kafka.writer`` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT_VERSION = "1"
COMPRESSION = "zstd"


def arrow_schema() -> pa.Schema:
    """The archive schema; the Parquet file metadata carries ``backup_pipelines.format``."""
    import pyarrow as pa

    header = pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())])
    return pa.schema(
        [
            pa.field("topic", pa.string(), nullable=False),
            pa.field("partition", pa.int32(), nullable=False),
            pa.field("offset", pa.int64(), nullable=False),
            pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
            pa.field("timestamp_type", pa.int8(), nullable=False),
            pa.field("key", pa.binary()),
            pa.field("value", pa.binary()),
            pa.field("headers", pa.list_(pa.field("item", header, nullable=False))),
        ],
        metadata={"backup_pipelines.format": FORMAT_VERSION},
    )


@dataclass(frozen=True)
class Record:
    """One Kafka record as archived and replayed (``timestamp_ms`` None when the type is 0, none)."""

    topic: str
    partition: int
    offset: int
    timestamp_type: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None


@dataclass(frozen=True)
class RecordColumns:
    """Records of one partition as confluent-kafka hands them over, column by column: what the
    consuming thread passes to the writer (no per-record object of our own on the hot path)."""

    offsets: list[int]
    stamps: list[tuple[int, int]]  # (timestamp type, timestamp ms) as ``Message.timestamp()``
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list[tuple[str, bytes | None]] | None]

    @classmethod
    def of(cls, messages: Sequence[Any]) -> RecordColumns:
        """The columns of consumed messages (none of them an error event)."""
        return cls(
            [m.offset() for m in messages],
            [m.timestamp() for m in messages],
            [m.key() for m in messages],
            [m.value() for m in messages],
            [m.headers() for m in messages],
        )

    def __len__(self) -> int:
        return len(self.offsets)

    def slice(self, i: int, j: int) -> RecordColumns:
        if i == 0 and j == len(self.offsets):
            return self
        return RecordColumns(
            self.offsets[i:j], self.stamps[i:j], self.keys[i:j], self.values[i:j], self.headers[i:j]
        )

    def records(self, topic: str, partition: int) -> Iterator[Record]:
        for offset, (ts_type, ts), key, value, headers in zip(
            self.offsets, self.stamps, self.keys, self.values, self.headers, strict=True
        ):
            yield Record(topic, partition, offset, ts_type, ts if ts_type else None, key, value, headers)


@dataclass
class ArchiveFile:
    """One closed archive file on local disk, with the index the manifest records for it."""

    path: Path
    partition: int
    first_offset: int
    last_offset: int
    records: int
    first_timestamp_ms: int | None
    last_timestamp_ms: int | None
    min_timestamp_ms: int | None
    max_timestamp_ms: int | None
    size: int
    sha256: str
    raw_bytes: int

    def name(self) -> str:
        return f"{self.first_offset}-{self.last_offset}.parquet"


_MIN_MS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp() * 1000)
_MAX_MS = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp() * 1000)


def ms_to_datetime(value: int | None) -> datetime | None:
    """Milliseconds since the epoch as a UTC datetime, clamped to the years datetime can hold (a
    producer may set any int64 timestamp; a clamped bound still sorts on the right side)."""
    if value is None:
        return None
    return datetime.fromtimestamp(min(max(value, _MIN_MS), _MAX_MS) / 1000, tz=UTC)


def read_records(path: Path | str, *, batch_rows: int = 65_536) -> Iterator[Record]:
    """Records of an archive file in stored (offset) order, one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(str(path))
    for batch in parquet.iter_batches(batch_size=batch_rows):
        columns = batch.drop_columns(["timestamp"]).to_pydict()
        # Milliseconds as stored: a datetime cannot hold every int64 timestamp a producer may set.
        timestamps = batch.column("timestamp").cast(pa.int64()).to_pylist()
        for i in range(batch.num_rows):
            headers = columns["headers"][i]
            yield Record(
                topic=columns["topic"][i],
                partition=columns["partition"][i],
                offset=columns["offset"][i],
                timestamp_type=columns["timestamp_type"][i],
                timestamp_ms=timestamps[i],
                key=columns["key"][i],
                value=columns["value"][i],
                headers=None if headers is None else [(h["key"], h["value"]) for h in headers],
            )


def read_offsets(path: Path | str) -> list[int]:
    """Only the offset column (cheap): for verification."""
    import pyarrow.parquet as pq

    return pq.read_table(str(path), columns=["offset"]).column("offset").to_pylist()
