"""Fakes and factories for Kafka tests without a broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError

from backup_pipelines.kafka.parquet import Record


class FakeMessage:
    def __init__(self, offset: int, ts: int | None = None, error: KafkaError | None = None) -> None:
        self._offset, self._ts, self._error = offset, ts, error

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._ts is None else (1, self._ts)

    def error(self) -> KafkaError | None:
        return self._error


def archive_manifest(**fields: Any) -> Any:
    """A kafka_archive manifest of topic ``events`` for the window ending 2026-11-16 04:00."""
    from backup_pipelines.core.manifest import Manifest

    return Manifest(
        kind="kafka_archive",
        dataset="events",
        recovery_point_id="20261116T040000Z",
        captured_at=datetime(2026, 11, 16, 4, tzinfo=UTC),
        location="s3://analytics-archive/kafka/events/",
        storage_class="GLACIER",
        **fields,
    )


def record(offset: int, *, ts: int | None = 1_000, value: bytes = b"v") -> Record:
    return Record("events", 0, offset, 0 if ts is None else 1, ts, b"k", value, [("h", b"1")])
