"""Archiving one topic-partition: read ``[start, cut)`` into zstd Parquet files and upload each one.

Files are split at ``file_max_bytes``; each closed file is uploaded (in parts above
``UPLOAD_PART_SIZE``) while the next one is written, its S3 SHA-256 checked, and only then
removed from local disk. Keys are deterministic (``<prefix><topic>/partition=<p>/<first>-<last>``),
so a retried task rewrites the same objects.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from backup_pipelines.core.checksums import b64_to_hex, composite_sha256_of_file, parts_of
from backup_pipelines.core.errors import ChecksumMismatchError
from backup_pipelines.kafka.client import KafkaClient
from backup_pipelines.kafka.cursor import ReadResult
from backup_pipelines.kafka.parquet import ArchiveFile, ms_to_datetime
from backup_pipelines.kafka.pipeline import Stage, StageStopped, fewer_collections
from backup_pipelines.kafka.writer import PartitionArchiveWriter

if TYPE_CHECKING:
    from backup_pipelines.core.config import Encryption, ObjectLockRetention
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

# Archive files above this size are uploaded in parts of this size.
UPLOAD_PART_SIZE: Final = 64 * 1024 * 1024


def archive_partition(
    client: KafkaClient,
    *,
    topic: str,
    partition: int,
    start_offset: int,
    end_offset: int | None,
    upload: Callable[[ArchiveFile], dict[str, Any]],
    skip_before_ms: int | None = None,
    window_ms: tuple[int, int] | None = None,
    file_max_bytes: int = 256 * 1024 * 1024,
    row_group_rows: int = 100_000,
    spool_dir: Path | str | None = None,
    progress_every: int = 500_000,
    on_progress: Callable[[ReadResult], None] | None = None,
) -> tuple[ReadResult, list[dict[str, Any]]]:
    """Read ``[start_offset, end_offset)`` of a partition into Parquet files and ``upload`` each.

    Four stages overlap (``kafka.pipeline``): this thread consumes; one thread converts to Arrow;
    one compresses, writes and hashes files; one uploads each closed file (``upload`` stores it
    and returns its manifest index entry) and removes it. Local disk holds at most three files.
    ``window_ms`` ([start, end)) counts the records stamped outside it (``outside_window``);
    ``ReadResult.stages`` tells what each stage cost.
    """
    entries: list[dict[str, Any]] = []
    writer, stage = _stages(
        topic,
        partition,
        upload,
        entries,
        file_max_bytes=file_max_bytes,
        row_group_rows=row_group_rows,
        spool_dir=spool_dir,
        window_ms=window_ms,
    )
    result = ReadResult(topic, partition, requested_start=start_offset, start_offset=start_offset)
    progress = _Progress(result, progress_every, on_progress)
    started = time.thread_time()
    try:
        with fewer_collections():
            for columns in client.read_batches(
                topic, partition, start_offset, result, end_offset=end_offset, skip_before_ms=skip_before_ms
            ):
                stage.put(columns)
                progress.update(columns.offsets[-1])
            stage.close()
    except BaseException as exc:
        root = stage.failure() if isinstance(exc, StageStopped) else None
        for item in stage.abort():
            if isinstance(item, ArchiveFile):
                item.path.unlink(missing_ok=True)
        writer.abort()
        if root is not None:
            raise root from None
        raise
    if window_ms is not None:
        result.outside_window = dict(writer.outside_window)
    result.stages = _stage_costs(stage, time.thread_time() - started, time.monotonic() - progress.started)
    _log_read(result, len(entries))
    return result, entries


def _stages(
    topic: str,
    partition: int,
    upload: Callable[[ArchiveFile], dict[str, Any]],
    entries: list[dict[str, Any]],
    **settings: Any,
) -> tuple[PartitionArchiveWriter, Stage]:
    """The writer, and the first of its three stages: conversion to Arrow, then the Parquet spool
    (compression and writing), then the upload, which keeps each file's index entry in
    ``entries`` (in file order) and removes the file from disk."""

    def _upload(archive_file: ArchiveFile) -> None:
        try:
            entries.append(upload(archive_file))
        finally:
            archive_file.path.unlink(missing_ok=True)

    uploader = Stage(f"kafka-upload-{topic}[{partition}]", _upload, maxsize=1)

    def _hand_over(archive_file: ArchiveFile) -> None:
        try:
            uploader.put(archive_file)
        except BaseException:
            archive_file.path.unlink(missing_ok=True)
            raise

    writer = PartitionArchiveWriter(topic=topic, partition=partition, on_file=_hand_over, **settings)
    spool = writer.spool
    label = f"{topic}[{partition}]"
    writing = Stage(f"kafka-write-{label}", spool.write, finish=spool.close, maxsize=1, downstream=uploader)
    writer.on_row_group = writing.put
    converting = Stage(
        f"kafka-convert-{label}", writer.add_columns, finish=writer.close, maxsize=2, downstream=writing
    )
    return writer, converting


class _Progress:
    """A log line (and ``on_progress``, in the consuming thread) every ``every`` records."""

    def __init__(
        self, result: ReadResult, every: int, on_progress: Callable[[ReadResult], None] | None
    ) -> None:
        self.result = result
        self.every = every
        self.on_progress = on_progress
        self.next = every
        self.started = time.monotonic()

    def update(self, last_offset: int) -> None:
        result = self.result
        if result.records < self.next:
            return
        while self.next <= result.records:
            self.next += self.every
        rate = result.records / max(time.monotonic() - self.started, 1e-6)
        log.info(
            "%s[%d]: %d records archived up to offset %d (%.0f records/s)",
            result.topic,
            result.partition,
            result.records,
            last_offset,
            rate,
        )
        if self.on_progress is not None:
            self.on_progress(result)


def _stage_costs(first: Stage, consume_cpu: float, wall: float) -> dict[str, dict[str, float]]:
    """Each stage's CPU seconds and the seconds it waited on the next stage's full queue: the
    stage that kept the others waiting is the one that bounds the archive's speed."""
    chain: list[Stage] = []
    stage: Stage | None = first
    while stage is not None:
        chain.append(stage)
        stage = stage.downstream
    names = ["consume", *(s.name.split("-")[1] for s in chain)]
    cpu = [consume_cpu, *(s.cpu_seconds for s in chain)]
    waited = [*(s.waited_seconds for s in chain), 0.0]
    costs = {
        n: {"cpu_s": round(c, 3), "waited_s": round(w, 3)} for n, c, w in zip(names, cpu, waited, strict=True)
    }
    costs["all"] = {"wall_s": round(wall, 3)}
    return costs


def _log_read(result: ReadResult, files: int) -> None:
    log.info(
        "%s[%d]: archived offsets [%d, %d): %d records in %d file(s), stopped by %s, %d skipped "
        "before the window, %d offset(s) without a record",
        result.topic,
        result.partition,
        result.start_offset,
        result.end_offset,
        result.records,
        files,
        result.stopped_by,
        result.skipped_before_window,
        result.no_record_offsets,
    )
    if result.stages:
        costs = ", ".join(
            f"{name} {c['cpu_s']:.1f}/{c['waited_s']:.1f}"
            for name, c in result.stages.items()
            if name != "all"
        )
        log.info(
            "%s[%d]: stage CPU / waiting on the next stage, seconds: %s; %.1f s in all",
            result.topic,
            result.partition,
            costs,
            result.stages["all"]["wall_s"],
        )


def recovery_point_id(interval_end: datetime) -> str:
    """The archive of a window is named after the window's end (UTC), e.g. ``20261116T040000Z``."""
    return interval_end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def object_key(prefix: str, topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Deterministic key of an archive file: a retried task rewrites the same object."""
    return f"{prefix}{topic}/partition={partition}/{first_offset}-{last_offset}.parquet"


KEY_RANGE = re.compile(r"/partition=(\d+)/(\d+)-(\d+)\.parquet$")


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def upload_archive_file(
    s3: BackupS3Hook,
    archive_file: ArchiveFile,
    *,
    topic: str,
    bucket: str,
    prefix: str,
    encryption: Encryption,
    storage_class: str,
    object_lock: ObjectLockRetention | None,
    now: datetime,
    part_size: int = UPLOAD_PART_SIZE,
) -> dict[str, Any]:
    """Upload one closed archive file (in ``part_size`` parts above that size, streamed from
    disk), check S3's SHA-256 of it and return its manifest index entry: key, size, SHA-256,
    storage class, offsets, time range, count."""
    from boto3.s3.transfer import TransferConfig

    key = object_key(
        prefix, topic, archive_file.partition, archive_file.first_offset, archive_file.last_offset
    )
    extra = s3.write_args(
        bucket, encryption=encryption, storage_class=storage_class, object_lock=object_lock, now=now
    )
    extra.update(
        {
            "ChecksumAlgorithm": "SHA256",
            "ContentType": "application/vnd.apache.parquet",
            "Metadata": {"sha256": archive_file.sha256, "records": str(archive_file.records)},
        }
    )
    s3.client.upload_file(
        str(archive_file.path),
        bucket,
        key,
        ExtraArgs=extra,
        Config=TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size),
    )
    head = check_upload(s3, bucket, key, archive_file, part_size)
    return {
        "key": key,
        "size": archive_file.size,
        "sha256": archive_file.sha256,
        "storage_class": head.get("StorageClass", storage_class),
        "topic": topic,
        "partition": archive_file.partition,
        "first_offset": archive_file.first_offset,
        "last_offset": archive_file.last_offset,
        "records": archive_file.records,
        "first_timestamp": iso_ms(archive_file.min_timestamp_ms),
        "last_timestamp": iso_ms(archive_file.max_timestamp_ms),
        "raw_bytes": archive_file.raw_bytes,
    }


def check_upload(
    s3: BackupS3Hook, bucket: str, key: str, archive_file: ArchiveFile, part_size: int
) -> dict[str, Any]:
    """What S3 holds at ``key`` is the file written: size, and SHA-256 (composite above one part)."""
    head = s3.head(bucket, key)
    if head is None or int(head["ContentLength"]) != archive_file.size:
        raise ChecksumMismatchError(
            f"s3://{bucket}/{key}: stored size {head and head['ContentLength']} != "
            f"{archive_file.size} written"
        )
    stored = head.get("ChecksumSHA256")
    if stored and (parts_of(head.get("ETag", "")) > 1 or head.get("ChecksumType") == "COMPOSITE"):
        # Uploaded in parts: S3 keeps the SHA-256 of the parts' SHA-256s (``<base64>-<parts>``).
        expected = composite_sha256_of_file(str(archive_file.path), part_size)
        if stored.split("-")[0] != expected.split("-")[0]:
            raise ChecksumMismatchError(
                f"s3://{bucket}/{key}: S3 composite SHA-256 {stored} != {expected} of the file written "
                f"in {part_size}-byte parts"
            )
    elif stored and b64_to_hex(stored) != archive_file.sha256:
        raise ChecksumMismatchError(
            f"s3://{bucket}/{key}: S3 SHA-256 {b64_to_hex(stored)} != "
            f"{archive_file.sha256} of the file written"
        )
    return head


def iso_ms(value: int | None) -> str | None:
    moment = ms_to_datetime(value)
    return moment.isoformat() if moment else None
