"""Events of a catch-up into a replay topic: archived ranges through the Kafka replay code, then
ranges the topic still holds.

Every record keeps its key, value, headers and timestamp (``kafka.replay.Replayer``) and gains one
header, ``SOURCE_HEADER`` = ``<topic>/<partition>/<offset>`` of the original record, so an
ingestion that keys rows by their source position (or an event id in the value) stores a record
replayed twice once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backup_pipelines.core.errors import ChecksumMismatchError, VerificationError
from backup_pipelines.kafka.cursor import ReadResult
from backup_pipelines.kafka.files import iter_file_slice, verify_archive_file
from backup_pipelines.kafka.parquet import Record
from backup_pipelines.kafka.replay import Replayer, download_archive_file

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.kafka.client import KafkaClient

log = logging.getLogger(__name__)

SOURCE_HEADER = "bp-source"


def with_source(records: Iterable[Record]) -> Iterator[Record]:
    """Records with the ``SOURCE_HEADER`` naming where each was first written."""
    for record in records:
        source = f"{record.topic}/{record.partition}/{record.offset}".encode()
        yield dataclasses.replace(record, headers=[*(record.headers or []), (SOURCE_HEADER, source)])


def source_of(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[str, int, int] | None:
    """(topic, partition, offset) from a replayed record's headers; None for an original record."""
    for name, value in headers or []:
        if name == SOURCE_HEADER and value:
            topic, partition, offset = value.decode().rsplit("/", 2)
            return topic, int(partition), int(offset)
    return None


def feed_archived(
    kafka: KafkaClient,
    s3: BackupS3Hook,
    *,
    bucket: str,
    files: list[dict[str, Any]],
    start: int,
    end: int,
    target_topic: str,
    producer: Producer,
    spool: Path,
) -> int:
    """Produce the archived records of ``[start, end)`` from ``files`` (one partition, in offset
    order), each file checked against its index entry (SHA-256, offsets, count) first."""
    produced = 0
    for entry in sorted(files, key=lambda e: e["first_offset"]):
        local = download_archive_file(s3, bucket, entry, spool)
        try:
            check = verify_archive_file(local, entry)
            if not check.ok:
                sha = any("SHA-256" in p for p in check.problems)
                error = ChecksumMismatchError if sha else VerificationError
                raise error(f"archive file {check.key} failed verification: {'; '.join(check.problems)}")
            records = with_source(iter_file_slice(local, first_offset=start, last_offset=end - 1))
            result = Replayer(kafka).replay_records(records, target_topic=target_topic, producer=producer)
        finally:
            local.unlink(missing_ok=True)
        produced += result.produced
        log.info("catch-up: %s -> %s: %d record(s)", entry["key"], target_topic, result.produced)
    return produced


def feed_topic(
    kafka: KafkaClient,
    *,
    topic: str,
    partition: int,
    start: int,
    end: int,
    target_topic: str,
    producer: Producer,
) -> int:
    """Produce the records ``[start, end)`` the topic still holds into ``target_topic``."""
    result = ReadResult(topic, partition, requested_start=start, start_offset=start)
    records = with_source(kafka.read_partition(topic, partition, start, result, end_offset=end))
    produced = Replayer(kafka).replay_records(records, target_topic=target_topic, producer=producer).produced
    log.info(
        "catch-up: %s[%d] %d-%d -> %s: %d record(s)", topic, partition, start, end - 1, target_topic, produced
    )
    return produced
