"""Kafka I/O of the weekly archive and the replay: watermarks, retention, offset-exact consumption,
archive-file verification and replay, all through the apache-kafka provider's hooks.

Coverage is by offsets, never by clock. A partition is read from a start offset (the previous
archive's end) up to the first record whose timestamp is at or after the window end, or to the
end of the partition. The end is learnt from the partition-EOF event, not from
``get_watermark_offsets``: the embedded broker (Tansu) answers ``(0, 1)`` there after 1000
records, while its fetch responses carry the true high watermark. Tansu also answers offset 0 to
``offsets_for_times``, so a time-based start is treated as a lower bound and the records before
the window start are skipped while reading.

Offsets a ``read_committed`` consumer never sees (transaction markers, aborted or compacted
records) are counted as offsets without a record and count as covered, once a low watermark read
after the skip proves retention had not deleted them (``_Cursor._record_gap``).

The consumer never moves a live consumer group: partitions are assigned manually, under the
archiver's own group id, and nothing is committed.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

from backup_pipelines.core.errors import (
    BackupPipelinesError,
    ChecksumMismatchError,
    ObjectNotRestoredError,
    OffsetGapError,
    VerificationError,
)
from backup_pipelines.core.s3 import b64_to_hex, composite_sha256_of_file, parts_of
from backup_pipelines.kafka.parquet import (
    ArchiveFile,
    PartitionArchiveWriter,
    Record,
    file_sha256,
    ms_to_datetime,
    read_records,
)

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer

    from backup_pipelines.core.catalog import Catalog, Manifest
    from backup_pipelines.core.config import BackupConfig, Encryption, ObjectLockRetention
    from backup_pipelines.core.s3 import S3ArchiveHook

log = logging.getLogger(__name__)

KIND: Final = "kafka_archive"
# Seconds between low-watermark reads that prove skipped offsets were never deleted.
GAP_PROOF_INTERVAL: Final = 10.0
# Runs of offsets without a record listed in a manifest (the rest are only counted).
NO_RECORD_SAMPLE_RUNS: Final = 10
# Archive files above this size are uploaded in parts of this size.
UPLOAD_PART_SIZE: Final = 64 * 1024 * 1024

# Consumer settings the archiver always overrides, whatever the connection says.
ARCHIVE_CONSUMER_OVERRIDES: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    # An offset that is gone must be an error, never a silent jump to the earliest/latest record.
    "auto.offset.reset": "error",
    "isolation.level": "read_committed",
}
REPLAY_PRODUCER_OVERRIDES: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
}


class _ConfiguredConsumerHook(KafkaConsumerHook):
    """The provider's consumer hook with settings layered over the connection's config."""

    def __init__(self, *, kafka_config_id: str, overrides: dict[str, Any]) -> None:
        super().__init__(topics=[], kafka_config_id=kafka_config_id)
        self.overrides = overrides

    def _get_client(self, config: dict[str, Any]) -> Consumer:
        return super()._get_client({**config, **self.overrides})


class _ConfiguredProducerHook(KafkaProducerHook):
    def __init__(self, *, kafka_config_id: str, overrides: dict[str, Any]) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.overrides = overrides

    def _get_client(self, config: dict[str, Any]) -> Producer:
        merged = {k: v for k, v in config.items() if k not in ("group.id", "enable.auto.commit")}
        return super()._get_client({**merged, **self.overrides})


@dataclass
class ReadResult:
    """What a partition read covered: ``[start_offset, end_offset)`` and why it stopped."""

    topic: str
    partition: int
    requested_start: int
    start_offset: int
    end_offset: int = -1
    records: int = 0
    skipped_before_window: int = 0
    stopped_by: str = ""
    # Offsets the broker holds no readable record for (transaction markers, aborted or compacted
    # records): counted, not listed, as a transactional topic has one run per transaction.
    no_record_offsets: int = 0
    no_record_runs: int = 0
    no_record_sample: list[tuple[int, int]] = field(default_factory=list)
    high_watermark: int | None = None

    def no_record(self) -> dict[str, Any]:
        """The manifest's account of the offsets without a record (empty when there are none)."""
        if not self.no_record_offsets:
            return {}
        return {
            "offsets": self.no_record_offsets,
            "runs": self.no_record_runs,
            "first_runs": [list(run) for run in self.no_record_sample],
        }


@dataclass
class FileVerification:
    """Result of checking one archive file against its manifest index entry."""

    key: str
    records: int
    first_offset: int | None
    last_offset: int | None
    sha256: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ReplayResult:
    target_topic: str
    produced: int = 0
    by_partition: dict[int, int] = field(default_factory=dict)
    files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "by_partition": {str(k): v for k, v in self.by_partition.items()}}


class _Cursor:
    """Where a partition read is, and the rules that decide what is archived and where it stops."""

    def __init__(
        self,
        result: ReadResult,
        start_offset: int,
        skip_before_ms: int | None,
        end_time_ms: int | None,
        max_records: int | None,
        *,
        low_watermark: Callable[[], int] | None = None,
    ) -> None:
        self.result = result
        self.start = start_offset
        self.expected = start_offset
        self.skip_before_ms = skip_before_ms
        self.end_time_ms = end_time_ms
        self.max_records = max_records
        self.low_watermark = low_watermark
        self.done = False
        # The oldest run not yet proven never-deleted; later runs start later, so proving it
        # proves them too.
        self._unproven: tuple[int, int] | None = None
        self._last_proof = time.monotonic()

    @property
    def label(self) -> str:
        return f"{self.result.topic}[{self.result.partition}]"

    def _stop(self, end_offset: int, reason: str) -> None:
        self._prove_gaps()
        self.result.end_offset = end_offset
        self.result.stopped_by = reason
        self.done = True

    def _head_deleted(self) -> bool:
        """Whether the offsets at the start of the read that held no record were deleted
        (retention moved the low watermark past the start) rather than never readable."""
        if self.low_watermark is None:
            return True
        low = self.low_watermark()
        log.info("%s: no record at offset %d; low watermark %d", self.label, self.start, low)
        return low > self.start

    def _record_gap(self, first: int, end: int) -> None:
        """Offsets ``[first, end)`` the broker served no record for: transaction markers, aborted
        or compacted records, which count as covered, or records deleted by retention after the
        read started (a broker that skips to the next batch it holds instead of answering
        OFFSET_OUT_OF_RANGE), which is data loss. The low watermark tells them apart: read after
        the skip, it is still at or before ``first`` only if ``first`` was not deleted (it only
        moves forward, and retention deletes from the head). Gaps are proven in batches, every
        ``GAP_PROOF_INTERVAL`` seconds (``prove_if_due``, after every batch) and when the read
        stops, so a skip is proven before retention can catch up with it."""
        result = self.result
        result.no_record_offsets += end - first
        result.no_record_runs += 1
        if len(result.no_record_sample) < NO_RECORD_SAMPLE_RUNS:
            result.no_record_sample.append((first, end))
        if self._unproven is None:
            self._unproven = (first, end)

    def prove_if_due(self) -> None:
        if self._unproven is not None and time.monotonic() - self._last_proof > GAP_PROOF_INTERVAL:
            self._prove_gaps()

    def _prove_gaps(self) -> None:
        if self._unproven is None or self.low_watermark is None:
            return
        low = self.low_watermark()
        self._last_proof = time.monotonic()
        first, end = self._unproven
        if first < low:
            raise OffsetGapError(
                f"{self.label}: offsets {first}-{end - 1} held no record when read and the low "
                f"watermark has since moved past them (to {low}): they were deleted before they were "
                "archived, or retention is deleting records as fast as the archive reads them"
            )
        self._unproven = None

    def on_error(self, message: Any) -> None:
        from confluent_kafka import KafkaError

        error = message.error()
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            high = int(message.offset())
            self.result.high_watermark = high
            if high < self.start:
                raise OffsetGapError(
                    f"{self.label}: the partition ends at offset {high}, before offset {self.start} "
                    "where the archive continues; was the topic deleted and re-created or truncated?"
                )
            if high > self.expected and self.skip_before_ms is None:
                if self.result.records == 0 and self.expected == self.start and self._head_deleted():
                    raise OffsetGapError(
                        f"{self.label}: offsets {self.start}-{high - 1} are missing: the partition ends "
                        f"at {high} with none of them readable; they were deleted before they were archived"
                    )
                self._record_gap(self.expected, high)
            self._stop(max(high, self.expected), "end_of_partition")
            return
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            raise OffsetGapError(
                f"{self.label}: offset {self.expected} is no longer on the broker ({error.str()}); "
                f"offsets from {self.expected} were deleted before they were archived"
            )
        if error.fatal() or not (error.retriable() or code < 0):
            raise BackupPipelinesError(f"{self.label}: Kafka error {error.str()}")
        log.warning("%s: transient Kafka error, retrying: %s", self.label, error)

    def accept(self, message: Any) -> bool:
        """Whether ``message`` belongs to the archive; sets ``done`` when it is the cut."""
        offset: int = message.offset()
        if offset < self.expected:
            return False  # already seen (a re-fetch after a reconnect)
        ts_type, ts = message.timestamp()
        result = self.result
        if self.skip_before_ms is not None:
            if ts_type and ts < self.skip_before_ms:
                result.skipped_before_window += 1
                self.expected = result.start_offset = offset + 1
                return False
            self.skip_before_ms = None
            self.expected = result.start_offset = offset
        if offset > self.expected:
            if result.records == 0 and self.expected == self.start and self._head_deleted():
                raise OffsetGapError(
                    f"{self.label}: offsets {self.expected}-{offset - 1} are missing: the first record "
                    f"read is at {offset}; they were deleted before they were archived"
                )
            self._record_gap(self.expected, offset)
        if self.end_time_ms is not None and ts_type and ts >= self.end_time_ms:
            self._stop(offset, "window_end")
            return False
        if self.max_records is not None and result.records >= self.max_records:
            self._stop(offset, "max_records")
            return False
        result.records += 1
        self.expected = offset + 1
        return True


class KafkaArchiveHook:
    """Everything the archive and replay do against Kafka; built in ``execute`` from connection ids."""

    def __init__(
        self,
        *,
        kafka_conn_id: str = "kafka_default",
        group_id: str = "backup-pipelines-archiver",
        poll_timeout: float = 1.0,
        stall_timeout: float = 120.0,
        batch_size: int = 10_000,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self.consumer_config = dict(consumer_config or {})
        self.kafka_conn_id = kafka_conn_id
        self.group_id = group_id
        self.poll_timeout = poll_timeout
        self.stall_timeout = stall_timeout
        self.batch_size = batch_size

    # -- clients ---------------------------------------------------------------------------------
    def consumer(self, **overrides: Any) -> Consumer:
        """A consumer for manual assignment under the archiver's own group id; it commits nothing."""
        settings = {
            "group.id": self.group_id,
            **self.consumer_config,
            **ARCHIVE_CONSUMER_OVERRIDES,
            **overrides,
        }
        return _ConfiguredConsumerHook(kafka_config_id=self.kafka_conn_id, overrides=settings).get_conn

    def producer(self, **overrides: Any) -> Producer:
        settings = {**REPLAY_PRODUCER_OVERRIDES, **overrides}
        return _ConfiguredProducerHook(kafka_config_id=self.kafka_conn_id, overrides=settings).get_conn

    def admin(self) -> Any:
        return KafkaAdminClientHook(kafka_config_id=self.kafka_conn_id).get_conn

    # -- metadata --------------------------------------------------------------------------------
    def partitions(self, topic: str, *, timeout: float = 30.0) -> list[int]:
        """Partition ids of a topic; raises naming the topic when it does not exist."""
        admin = self.admin()
        metadata = admin.list_topics(topic, timeout=timeout)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            reason = info.error if info is not None and info.error is not None else "no partitions"
            raise OffsetGapError(f"Kafka topic {topic!r} cannot be archived: {reason}")
        return sorted(info.partitions)

    def topic_config(self, topic: str, *, timeout: float = 30.0) -> dict[str, str]:
        """The topic's effective config (``retention.ms``, ``cleanup.policy``, ...)."""
        from confluent_kafka.admin import ConfigResource

        admin = self.admin()  # keep the client alive until the futures resolve
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        config: dict[str, str] = {}
        for future in futures.values():
            for name, entry in future.result(timeout=timeout).items():
                if entry.value is not None:
                    config[name] = str(entry.value)
        del admin
        return config

    def retention_ms(self, topic: str) -> int | None:
        """``retention.ms`` of a topic; None when unlimited (-1) or not reported."""
        value = self.topic_config(topic).get("retention.ms")
        if value is None or int(value) < 0:
            return None
        return int(value)

    def watermarks(
        self, topic: str, partition: int, *, timeout: float = 30.0, consumer: Consumer | None = None
    ) -> tuple[int, int]:
        """(low, high) watermarks as the broker reports them, on ``consumer`` when given (else a
        consumer of its own). The high one may be wrong on some brokers (see the module doc);
        callers only trust ``low`` and learn the end by reading."""
        from confluent_kafka import TopicPartition

        client = consumer or self.consumer()
        try:
            low, high = client.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            return int(low), int(high)
        finally:
            if consumer is None:
                client.close()

    def partition_watermarks(self, topic: str, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``watermarks`` of several partitions of a topic, over one consumer."""
        consumer = self.consumer()
        try:
            return {p: self.watermarks(topic, p, consumer=consumer) for p in partitions}
        finally:
            consumer.close()

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int, *, timeout: float = 30.0) -> int:
        """The earliest offset whose timestamp is >= ``timestamp_ms``, as a lower bound.

        -1 (no such record) maps to 0 here: reading then finds the true start. A broker that
        answers too early (Tansu answers 0) only costs a longer skip, never a missed record.
        """
        from confluent_kafka import TopicPartition

        consumer = self.consumer()
        try:
            answer = consumer.offsets_for_times(
                [TopicPartition(topic, partition, timestamp_ms)], timeout=timeout
            )
        finally:
            consumer.close()
        offset = answer[0].offset if answer else -1
        return max(int(offset), 0)

    # -- reading -----------------------------------------------------------------------------------
    def read_partition(
        self,
        topic: str,
        partition: int,
        start_offset: int,
        result: ReadResult,
        *,
        end_time_ms: int | None = None,
        skip_before_ms: int | None = None,
        max_records: int | None = None,
        consumer: Consumer | None = None,
    ) -> Iterator[Message]:
        """Yield the records of ``[start_offset, cut)`` in offset order and fill ``result``.

        The cut is the first record whose timestamp is >= ``end_time_ms`` (not yielded), the end
        of the partition, or ``max_records``. With ``skip_before_ms`` the leading records older
        than it are skipped (a time-based start on a broker whose ``offsets_for_times`` answers
        early). A record missing at the start means it was deleted before it was read:
        ``OffsetGapError``. Broker outages are waited out up to ``stall_timeout`` seconds without
        progress, then the task fails and retries from the same start.
        """
        from confluent_kafka import TopicPartition

        own = consumer is None
        client = consumer or self.consumer()
        cursor = _Cursor(
            result,
            start_offset,
            skip_before_ms,
            end_time_ms,
            max_records,
            low_watermark=lambda: self.watermarks(topic, partition, consumer=client)[0],
        )
        last_progress = time.monotonic()
        try:
            client.assign([TopicPartition(topic, partition, start_offset)])
            while not cursor.done:
                messages = client.consume(self.batch_size, timeout=self.poll_timeout)
                if not messages:
                    stalled = time.monotonic() - last_progress
                    if stalled > self.stall_timeout:
                        raise BackupPipelinesError(
                            f"{topic}[{partition}]: no records and no end of partition for "
                            f"{stalled:.0f}s at offset {cursor.expected}; broker unreachable or stalled"
                        )
                    continue
                last_progress = time.monotonic()
                for message in messages:
                    if message.error() is not None:
                        cursor.on_error(message)
                    elif cursor.accept(message):
                        yield message
                    if cursor.done:
                        break
                cursor.prove_if_due()
        finally:
            if own:
                client.close()

    # -- archiving ---------------------------------------------------------------------------------
    def archive_partition(
        self,
        *,
        topic: str,
        partition: int,
        start_offset: int,
        end_time_ms: int | None,
        upload: Callable[[ArchiveFile], dict[str, Any]],
        skip_before_ms: int | None = None,
        file_max_bytes: int = 256 * 1024 * 1024,
        row_group_rows: int = 100_000,
        spool_dir: Path | str | None = None,
        progress_every: int = 500_000,
        on_progress: Callable[[ReadResult], None] | None = None,
    ) -> tuple[ReadResult, list[dict[str, Any]]]:
        """Read ``[start_offset, cut)`` of a partition into Parquet files and ``upload`` each one.

        ``upload`` stores one closed file and returns its manifest index entry; local files are
        removed after it returns, so local disk holds at most one file at a time.
        """
        entries: list[dict[str, Any]] = []

        def _on_file(archive_file: ArchiveFile) -> None:
            try:
                entries.append(upload(archive_file))
            finally:
                archive_file.path.unlink(missing_ok=True)

        writer = PartitionArchiveWriter(
            topic=topic,
            partition=partition,
            on_file=_on_file,
            file_max_bytes=file_max_bytes,
            row_group_rows=row_group_rows,
            spool_dir=spool_dir,
        )
        result = ReadResult(topic, partition, requested_start=start_offset, start_offset=start_offset)
        add = writer.add
        started = time.monotonic()
        try:
            for message in self.read_partition(
                topic, partition, start_offset, result, end_time_ms=end_time_ms, skip_before_ms=skip_before_ms
            ):
                ts_type, ts = message.timestamp()
                add(message.offset(), ts_type, ts, message.key(), message.value(), message.headers())  # type: ignore[arg-type]
                if result.records % progress_every == 0:
                    log.info(
                        "%s[%d]: %d records archived up to offset %d (%.0f records/s)",
                        topic,
                        partition,
                        result.records,
                        message.offset(),
                        result.records / max(time.monotonic() - started, 1e-6),
                    )
                    if on_progress is not None:
                        on_progress(result)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        log.info(
            "%s[%d]: archived offsets [%d, %d): %d records in %d file(s), stopped by %s, %d skipped "
            "before the window, %d offset(s) without a record",
            topic,
            partition,
            result.start_offset,
            result.end_offset,
            result.records,
            len(entries),
            result.stopped_by,
            result.skipped_before_window,
            result.no_record_offsets,
        )
        return result, entries

    # -- verification (also used by the DR drill) ---------------------------------------------------
    @staticmethod
    def verify_archive_file(
        path: Path | str, entry: dict[str, Any], *, key: str | None = None
    ) -> FileVerification:
        """Check a local copy of an archive file against its manifest index entry.

        Checks: SHA-256 equals the index, offsets strictly increase, first/last offset and record
        count equal the index, every record belongs to the indexed partition. Never raises on a
        mismatch: the problems are listed, the caller decides.
        """
        import pyarrow.parquet as pq

        name = key or str(entry.get("key") or path)
        digest = file_sha256(path)
        table = pq.read_table(str(path), columns=["partition", "offset"])
        offsets = table.column("offset").to_pylist()
        partitions = set(table.column("partition").to_pylist())
        check = FileVerification(
            key=name,
            records=len(offsets),
            first_offset=offsets[0] if offsets else None,
            last_offset=offsets[-1] if offsets else None,
            sha256=digest,
        )
        if entry.get("sha256") and entry["sha256"] != digest:
            check.problems.append(f"SHA-256 {digest} != {entry['sha256']} in the manifest")
        if any(b <= a for a, b in itertools.pairwise(offsets)):
            check.problems.append("offsets do not strictly increase inside the file")
        for label, actual in (
            ("first_offset", check.first_offset),
            ("last_offset", check.last_offset),
            ("records", check.records),
            ("partition", next(iter(partitions)) if len(partitions) == 1 else sorted(partitions)),
        ):
            if entry.get(label) is not None and entry[label] != actual:
                check.problems.append(f"{label} {actual} != {entry[label]} in the manifest")
        return check

    @staticmethod
    def check_contiguity(
        ranges: Sequence[dict[str, Any]],
        entries: Sequence[dict[str, Any]],
        previous_end: dict[tuple[str, int], int],
    ) -> list[str]:
        """Problems that break gap-free, overlap-free coverage; empty when the archive is sound.

        ``ranges`` are the partitions' ``[start_offset, end_offset)`` with the ``records`` the read
        counted and its ``no_record`` account (``offsets``: how many it proved hold no readable
        record),
        ``entries`` the files' index entries, ``previous_end`` the end offset of each partition in
        the previous archive. Every offset of a range must be in exactly one file or be one of the
        offsets without a record.
        """
        problems: list[str] = []
        by_partition: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for entry in entries:
            by_partition.setdefault((entry["topic"], entry["partition"]), []).append(entry)
        for rng in ranges:
            tp = (rng["topic"], rng["partition"])
            label = f"{tp[0]}[{tp[1]}]"
            start, end = rng["start_offset"], rng["end_offset"]
            without_record = int((rng.get("no_record") or {}).get("offsets", 0))
            if end < start:
                problems.append(f"{label}: end offset {end} before start offset {start}")
            prev = previous_end.get(tp)
            if prev is not None and start != prev:
                kind = "gap" if start > prev else "overlap"
                problems.append(
                    f"{label}: {kind}: the previous archive ends at offset {prev}, this one starts at {start}"
                )
            files = sorted(by_partition.get(tp, []), key=lambda e: e["first_offset"])
            cursor = start
            count = 0
            holes: list[tuple[int, int]] = []
            for entry in files:
                span = entry["last_offset"] - entry["first_offset"] + 1
                if not 0 < entry["records"] <= span:
                    problems.append(
                        f"{label}: file {entry['key']} claims {entry['records']} records for offsets "
                        f"{entry['first_offset']}-{entry['last_offset']}"
                    )
                if entry["first_offset"] < cursor:
                    problems.append(f"{label}: file {entry['key']} overlaps offsets before {cursor}")
                elif entry["first_offset"] > cursor:
                    holes.append((cursor, entry["first_offset"]))
                if entry["last_offset"] >= end:
                    problems.append(f"{label}: file {entry['key']} holds offsets at or after the end {end}")
                cursor = entry["last_offset"] + 1
                count += entry["records"]
            if cursor < end:
                holes.append((cursor, end))
            if count != rng.get("records", count):
                problems.append(f"{label}: files hold {count} records, the read counted {rng['records']}")
            if count + without_record != end - start:
                problems += [f"{label}: offsets {a}-{b - 1} are in no file" for a, b in holes]
                recorded = f" and {without_record} without a record" if without_record else ""
                problems.append(
                    f"{label}: {end - start} offsets in [{start}, {end}) but {count} records "
                    f"archived{recorded}"
                )
        return problems

    # -- replay (also used by the DR drill) ----------------------------------------------------------
    def ensure_topic(self, topic: str, *, partitions: int, timeout: float = 30.0) -> int:
        """Create ``topic`` with ``partitions`` when missing; returns its partition count."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic

        admin = self.admin()
        existing = admin.list_topics(timeout=timeout).topics.get(topic)
        if existing is not None and existing.error is None and existing.partitions:
            return len(existing.partitions)
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
        for future in futures.values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        log.info("created replay topic %s with %d partitions", topic, partitions)
        return partitions

    def replay_records(
        self,
        records: Iterable[Record],
        *,
        target_topic: str,
        target_partitions: int | None = None,
        producer: Producer | None = None,
        flush_timeout: float = 120.0,
        progress_every: int = 100_000,
    ) -> ReplayResult:
        """Produce records with their original keys, values, headers and timestamps.

        A record goes to its original partition number when the target has enough partitions
        (so per-partition offset order is kept), otherwise to ``partition % target_partitions``.
        Delivery failures raise after the flush.
        """
        client = producer or self.producer()
        result = ReplayResult(target_topic=target_topic)
        failures: list[str] = []

        def _delivered(err: Any, msg: Any) -> None:
            if err is not None and len(failures) < 5:
                failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

        for record in records:
            partition = record.partition
            if target_partitions:
                partition %= target_partitions
            kwargs: dict[str, Any] = {"partition": partition, "on_delivery": _delivered}
            if record.timestamp_ms is not None and record.timestamp_type:
                kwargs["timestamp"] = record.timestamp_ms
            if record.headers is not None:
                kwargs["headers"] = record.headers
            while True:
                try:
                    client.produce(target_topic, value=record.value, key=record.key, **kwargs)
                    break
                except BufferError:
                    client.poll(0.5)
            result.produced += 1
            result.by_partition[partition] = result.by_partition.get(partition, 0) + 1
            if result.produced % 10_000 == 0:
                client.poll(0)
            if result.produced % progress_every == 0:
                log.info("replay to %s: %d records produced", target_topic, result.produced)
        remaining = client.flush(flush_timeout)
        if remaining or failures:
            raise BackupPipelinesError(
                f"replay to {target_topic}: {remaining} record(s) undelivered after {flush_timeout:.0f}s; "
                f"failures: {'; '.join(failures) or 'none reported'}"
            )
        return result

    def replay_file(
        self,
        path: Path | str,
        entry: dict[str, Any],
        *,
        target_topic: str,
        target_partitions: int | None = None,
        first_offset: int | None = None,
        last_offset: int | None = None,
        max_records: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        producer: Producer | None = None,
    ) -> ReplayResult:
        """Verify an archive file against its index entry, then replay (a slice of) it.

        A file that fails verification is never replayed: ``ChecksumMismatchError`` (SHA-256) or
        ``VerificationError`` (offsets, counts) names the file and the problems.
        """
        check = self.verify_archive_file(path, entry)
        if not check.ok:
            error = (
                ChecksumMismatchError if any("SHA-256" in p for p in check.problems) else VerificationError
            )
            raise error(f"archive file {check.key} failed verification: {'; '.join(check.problems)}")
        records = self.iter_file_slice(
            path,
            first_offset=first_offset,
            last_offset=last_offset,
            limit=max_records,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        result = self.replay_records(
            records, target_topic=target_topic, target_partitions=target_partitions, producer=producer
        )
        result.files = 1
        return result

    @staticmethod
    def iter_file_slice(
        path: Path | str,
        *,
        first_offset: int | None = None,
        last_offset: int | None = None,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> Iterator[Record]:
        """Records of a file within an offset range and/or ``[start_ms, end_ms)``, up to ``limit``."""
        count = 0
        for record in read_records(path):
            if first_offset is not None and record.offset < first_offset:
                continue
            if last_offset is not None and record.offset > last_offset:
                return
            if start_ms is not None and (record.timestamp_ms is None or record.timestamp_ms < start_ms):
                continue
            if end_ms is not None and (record.timestamp_ms is None or record.timestamp_ms >= end_ms):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield record

    def read_back(
        self, topic: str, partition: int, *, start_offset: int = 0, max_records: int | None = None
    ) -> list[Record]:
        """Every record of a partition from ``start_offset`` to its end, as archived records.

        For comparisons after a replay (the DR drill compares them record for record).
        """
        result = ReadResult(topic, partition, requested_start=start_offset, start_offset=start_offset)
        records = []
        for message in self.read_partition(topic, partition, start_offset, result, max_records=max_records):
            ts_type, ts = message.timestamp()
            headers = message.headers()
            records.append(
                Record(
                    topic=topic,
                    partition=partition,
                    offset=message.offset(),  # type: ignore[arg-type]
                    timestamp_type=ts_type,
                    timestamp_ms=ts if ts_type else None,
                    key=message.key(),
                    value=message.value(),
                    headers=list(headers) if headers is not None else None,  # type: ignore[arg-type]
                )
            )
        return records


def compare_records(expected: Sequence[Record], actual: Sequence[Record]) -> list[str]:
    """Differences between archived records and records read back after a replay (keys, values,
    headers, timestamps, in order); offsets and topic are expected to differ."""
    problems: list[str] = []
    if len(expected) != len(actual):
        problems.append(f"{len(actual)} records read back, {len(expected)} archived")
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        # A record archived without a timestamp (type 0) is stamped by the broker on replay.
        fields = ("key", "value") if want.timestamp_type == 0 else ("key", "value", "timestamp_ms")
        for name in fields:
            if getattr(want, name) != getattr(got, name):
                problems.append(f"record {i} (archived offset {want.offset}): {name} differs")
        if (want.headers or []) != (got.headers or []):
            problems.append(f"record {i} (archived offset {want.offset}): headers differ")
        if len(problems) >= 20:
            problems.append("... (stopped after 20 differences)")
            break
    return problems


# -- the weekly archive: plan, archive one partition, check, catalog ----------------------------------
def recovery_point_id(interval_end: datetime) -> str:
    """The archive of a window is named after the window's end (UTC), e.g. ``20261116T040000Z``."""
    return interval_end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def object_key(prefix: str, topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Deterministic key of an archive file: a retried task rewrites the same object."""
    return f"{prefix}{topic}/partition={partition}/{first_offset}-{last_offset}.parquet"


_KEY_RANGE = re.compile(r"/partition=(\d+)/(\d+)-(\d+)\.parquet$")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def upload_archive_file(
    s3: S3ArchiveHook,
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
        "first_timestamp": _iso(archive_file.min_timestamp_ms),
        "last_timestamp": _iso(archive_file.max_timestamp_ms),
        "raw_bytes": archive_file.raw_bytes,
    }


def _iso(value: int | None) -> str | None:
    moment = ms_to_datetime(value)
    return moment.isoformat() if moment else None


@dataclass
class GuardFinding:
    """What the retention guard found for one topic."""

    topic: str
    lost: list[dict[str, Any]] = field(default_factory=list)
    retention_warning: str | None = None


class WeeklyArchive:
    """The weekly archive of the configured topics: plan (with the retention guard), archive one
    partition, check contiguity, write the manifests. Each step is one Airflow task."""

    def __init__(
        self, kafka: KafkaArchiveHook, s3: S3ArchiveHook, catalog: Catalog, cfg: BackupConfig
    ) -> None:
        self.kafka = kafka
        self.s3 = s3
        self.catalog = catalog
        self.cfg = cfg
        self.section = cfg.kafka_archive

    def previous(self, topic: str, interval_start: datetime, interval_end: datetime) -> Manifest | None:
        """The archive this window continues: the newest one that ends at or before its start.

        An archive of a *later* window means this window is being run out of order: refused, as
        it would overlap offsets already archived.
        """
        listing = self.catalog.list_points(KIND, topic)
        this_id = recovery_point_id(interval_end)
        later = [
            p
            for p in listing.points
            if p.recovery_point_id != this_id
            and p.interval_end is not None
            and p.interval_end > interval_start
        ]
        if later:
            raise OffsetGapError(
                f"topic {topic!r}: archive {later[-1].recovery_point_id} already covers a window "
                f"ending after "
                f"{interval_start.isoformat()}; archives are made in window order (offsets would overlap)"
            )
        earlier = [
            p for p in listing.points if p.interval_end is not None and p.interval_end <= interval_start
        ]
        return max(earlier, key=lambda p: p.interval_end or interval_start) if earlier else None

    def plan(
        self, interval_start: datetime, interval_end: datetime
    ) -> tuple[list[dict[str, Any]], list[GuardFinding]]:
        """One spec per topic-partition, and the guard's findings (data lost, short retention)."""
        specs: list[dict[str, Any]] = []
        findings: list[GuardFinding] = []
        rp_id = recovery_point_id(interval_end)
        window = interval_end - interval_start
        for topic in self.section.topics:
            name = topic.name
            finding = GuardFinding(name)
            findings.append(finding)
            existing = self.catalog.get(KIND, name, rp_id)
            previous = None if existing else self.previous(name, interval_start, interval_end)
            prev_end = {(o.topic, o.partition): o.end_offset for o in (previous.offsets if previous else [])}
            retention = self.kafka.retention_ms(name)
            needed = window + self.section.retention_grace
            if retention is not None and retention < needed.total_seconds() * 1000:
                finding.retention_warning = (
                    f"topic {name!r}: retention.ms={retention} ({retention / 3_600_000:.1f} h) is "
                    "shorter than the "
                    f"archive window plus grace ({needed.total_seconds() / 3600:.1f} h); a late or failed "
                    "run can lose events before they are archived"
                )
                log.warning("retention guard: %s", finding.retention_warning)
            partitions = self.kafka.partitions(name)
            marks = {} if existing else self.kafka.partition_watermarks(name, partitions)
            for partition in partitions:
                start = prev_end.get((name, partition))
                mode = "continue" if start is not None else ("earliest" if previous else "window_start")
                if not existing:
                    low, high = marks[partition]
                    log.info(
                        "%s[%d]: watermarks low=%d high=%d (high is not trusted)", name, partition, low, high
                    )
                    if start is not None and low > start:
                        finding.lost.append({"partition": partition, "first": start, "last": low - 1})
                specs.append(
                    {
                        "topic": name,
                        "partition": partition,
                        "start_offset": start,
                        "start_mode": mode,
                        "interval_start": interval_start.isoformat(),
                        "interval_end": interval_end.isoformat(),
                        "recovery_point_id": rp_id,
                        "previous": previous.recovery_point_id if previous else None,
                        "existing": existing is not None,
                        "retention_warning": finding.retention_warning,
                    }
                )
        return specs, findings

    def archive(self, spec: dict[str, Any], *, spool_dir: Path | str | None = None) -> dict[str, Any]:
        """Archive one topic-partition of the window; returns its range and files (for XCom)."""
        from backup_pipelines.core.catalog import utcnow

        topic, partition = spec["topic"], spec["partition"]
        bucket, prefix = self.cfg.storage.archive_bucket, self.section.prefix
        if spec["existing"]:
            manifest = self.catalog.read(KIND, topic, spec["recovery_point_id"])
            rng = next((o for o in manifest.offsets if o.partition == partition), None)
            if rng is None:
                # A partition added since this window was archived: the next window's run starts
                # it at its low watermark (there is no previous end to continue from).
                log.info("%s[%d]: not in this window's archive; the next window covers it", topic, partition)
                return {
                    **_spec_fields(spec),
                    "start_offset": None,
                    "end_offset": None,
                    "records": 0,
                    "files": [],
                    "stopped_by": "not_in_archived_window",
                    "no_record": {},
                    "skipped_before_window": 0,
                }
            files = [o.model_dump(mode="json") for o in manifest.objects if o.partition == partition]
            no_record = manifest.details.get("offsets_without_record", {}).get(str(partition), {})
            log.info(
                "%s[%d]: window already archived in %s; nothing to do", topic, partition, manifest.location
            )
            return {
                **_spec_fields(spec),
                **_range_dict(rng),
                "records": sum(f["records"] or 0 for f in files),
                "files": files,
                "stopped_by": "already_archived",
                "no_record": no_record,
                "skipped_before_window": 0,
            }
        interval_start = datetime.fromisoformat(spec["interval_start"])
        interval_end = datetime.fromisoformat(spec["interval_end"])
        skip_before = None
        if spec["start_mode"] == "continue":
            start = int(spec["start_offset"])
        elif spec["start_mode"] == "earliest":
            start = self.kafka.watermarks(topic, partition)[0]
        else:
            start = self.kafka.offset_for_time(topic, partition, _ms(interval_start))
            skip_before = _ms(interval_start)
        now = utcnow()

        def _upload(archive_file: ArchiveFile) -> dict[str, Any]:
            return upload_archive_file(
                self.s3,
                archive_file,
                topic=topic,
                bucket=bucket,
                prefix=prefix,
                encryption=self.cfg.storage.encryption,
                storage_class=self.section.storage_class,
                object_lock=self.cfg.storage.object_lock,
                now=now,
            )

        result, entries = self.kafka.archive_partition(
            topic=topic,
            partition=partition,
            start_offset=start,
            skip_before_ms=skip_before,
            end_time_ms=_ms(interval_end),
            upload=_upload,
            file_max_bytes=self.section.file_max_bytes,
            row_group_rows=self.section.row_group_rows,
            spool_dir=spool_dir,
        )
        self._remove_stale_attempts(topic, partition, result.start_offset, {e["key"] for e in entries})
        return {
            **_spec_fields(spec),
            "start_offset": result.start_offset,
            "end_offset": result.end_offset,
            "records": result.records,
            "files": entries,
            "stopped_by": result.stopped_by,
            "no_record": result.no_record(),
            "skipped_before_window": result.skipped_before_window,
        }

    def _remove_stale_attempts(self, topic: str, partition: int, start: int, keep: set[str]) -> None:
        """Delete files an earlier, killed attempt of this window left at or after ``start``.

        No manifest references them: the previous archive ends at ``start`` and archives of later
        windows are refused (``previous``), so they are garbage that would confuse a listing.
        """
        listing = self.catalog.list_points(KIND, topic)
        if listing.invalid:
            # An unreadable manifest may list these files: keep everything until someone looks.
            log.warning(
                "%s[%d]: not removing leftovers of earlier attempts: %d manifest(s) cannot be read (%s)",
                topic,
                partition,
                len(listing.invalid),
                ", ".join(i.key for i in listing.invalid),
            )
            return
        listed = {obj.key for point in listing.points for obj in point.objects}
        bucket = self.cfg.storage.archive_bucket
        stale = []
        for obj in self.s3.list_objects(bucket, f"{self.section.prefix}{topic}/partition={partition}/"):
            match = _KEY_RANGE.search(obj.key)
            if match and int(match.group(2)) >= start and obj.key not in keep and obj.key not in listed:
                stale.append(obj.key)
        if stale:
            log.warning(
                "%s[%d]: removing %d file(s) left by an earlier attempt: %s",
                topic,
                partition,
                len(stale),
                stale,
            )
            self.s3.delete_objects(bucket, stale)

    def check(self, results: Sequence[dict[str, Any]]) -> list[str]:
        """Gap-free, overlap-free coverage against the previous archive of each topic."""
        problems: list[str] = []
        for topic in sorted({r["topic"] for r in results}):
            rows = [r for r in results if r["topic"] == topic]
            rp_id = rows[0].get("recovery_point_id")
            interval_start = datetime.fromisoformat(rows[0]["interval_start"])
            interval_end = datetime.fromisoformat(rows[0]["interval_end"])
            if self.catalog.exists(KIND, topic, rp_id or recovery_point_id(interval_end)):
                continue
            previous = self.previous(topic, interval_start, interval_end)
            prev_end = {(o.topic, o.partition): o.end_offset for o in (previous.offsets if previous else [])}
            entries = [f for r in rows for f in r["files"]]
            problems += self.kafka.check_contiguity(rows, entries, prev_end)
        return problems

    def write_manifests(
        self, results: Sequence[dict[str, Any]], *, producer: dict[str, str]
    ) -> list[Manifest]:
        """One manifest per topic, written last, verified by the offset and upload checks."""
        from backup_pipelines.core.catalog import Manifest, ObjectEntry, OffsetRange, Verification, utcnow

        written = []
        bucket = self.cfg.storage.archive_bucket
        for topic in sorted({r["topic"] for r in results}):
            rows = sorted((r for r in results if r["topic"] == topic), key=lambda r: r["partition"])
            interval_end = datetime.fromisoformat(rows[0]["interval_end"])
            rp_id = recovery_point_id(interval_end)
            existing = self.catalog.get(KIND, topic, rp_id)
            if existing is not None:
                written.append(existing)
                continue
            objects = [
                ObjectEntry(**{k: v for k, v in f.items() if k in ObjectEntry.model_fields})
                for r in rows
                for f in r["files"]
            ]
            now = utcnow()
            manifest = Manifest(
                kind=KIND,
                dataset=topic,
                recovery_point_id=rp_id,
                interval_start=datetime.fromisoformat(rows[0]["interval_start"]),
                interval_end=interval_end,
                captured_at=now,
                location=f"s3://{bucket}/{self.section.prefix}{topic}/",
                storage_class=self.section.storage_class,
                objects=objects,
                message_count=sum(r["records"] for r in rows),
                offsets=[OffsetRange(**_range_dict(r)) for r in rows],
                software=_software(),
                producer=producer,
                verification=Verification(
                    state="verified",
                    verified_at=now,
                    checks=[
                        "offsets_contiguous_with_previous",
                        "files_cover_ranges",
                        "upload_size_and_sha256",
                    ],
                ),
                details={
                    "previous": rows[0].get("previous"),
                    "format": "parquet-zstd",
                    "raw_bytes": sum(f.get("raw_bytes") or 0 for r in rows for f in r["files"]),
                    "stopped_by": {str(r["partition"]): r["stopped_by"] for r in rows},
                    "skipped_before_window": sum(r["skipped_before_window"] for r in rows),
                    "offsets_without_record": {
                        str(r["partition"]): r["no_record"] for r in rows if r["no_record"]
                    },
                    "retention_warning": rows[0].get("retention_warning"),
                },
            )
            self.catalog.write(manifest)
            written.append(manifest)
        return written


def _spec_fields(spec: dict[str, Any]) -> dict[str, Any]:
    keep = ("topic", "partition", "interval_start", "interval_end", "recovery_point_id", "previous")
    return {k: spec.get(k) for k in (*keep, "retention_warning")}


def _range_dict(value: Any) -> dict[str, Any]:
    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k)
    return {k: get(k) for k in ("topic", "partition", "start_offset", "end_offset")}


def _software() -> dict[str, str]:
    import confluent_kafka
    import pyarrow

    return {
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "pyarrow": pyarrow.__version__,
    }


# -- replay of archived ranges ---------------------------------------------------------------------
def select_replay_files(
    points: Sequence[Manifest],
    *,
    partitions: Sequence[int] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
) -> list[dict[str, Any]]:
    """Archive files (index entries) that may hold records of the range, by partition and offset.

    Offsets are ``[start_offset, end_offset)``, times ``[start_ms, end_ms)``; a file is chosen
    when its indexed offset range and time range overlap them.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for manifest in points:
        for obj in manifest.objects:
            if obj.partition is None or obj.first_offset is None or obj.last_offset is None:
                continue
            if partitions is not None and obj.partition not in partitions:
                continue
            if start_offset is not None and obj.last_offset < start_offset:
                continue
            if end_offset is not None and obj.first_offset >= end_offset:
                continue
            if start_ms is not None and obj.last_timestamp and _ms(obj.last_timestamp) < start_ms:
                continue
            if end_ms is not None and obj.first_timestamp and _ms(obj.first_timestamp) >= end_ms:
                continue
            chosen[obj.key] = obj.model_dump(mode="json", exclude_none=True) | {"topic": manifest.dataset}
    return sorted(chosen.values(), key=lambda e: (e["partition"], e["first_offset"]))


def replay_plan(
    kafka: KafkaArchiveHook, s3: S3ArchiveHook, plan: dict[str, Any], spool: Path
) -> dict[str, Any]:
    """Replay the files of a plan (from ``KafkaReplayPlanOperator``) into its target topic.

    Files are read partition by partition in offset order; each is downloaded, checked against
    its index entry (SHA-256, offsets, count) and only then produced. ``dry_run`` reports what
    would be replayed without reading or producing anything.
    """
    files = plan["files"]
    window = plan.get("window", {})
    limit = plan.get("max_messages")
    summary: dict[str, Any] = {
        "topic": plan["topic"],
        "target_topic": plan["target_topic"],
        "files": len(files),
        "dry_run": plan["dry_run"],
        "produced": 0,
        "by_partition": {},
    }
    if plan["dry_run"] or not files:
        summary["records_upper_bound"] = sum(f.get("records") or 0 for f in files)
        return summary
    wanted = max(f["partition"] for f in files) + 1
    try:
        wanted = max(wanted, len(kafka.partitions(plan["topic"])))
    except OffsetGapError:
        log.info(
            "source topic %s is gone; creating %s with %d partitions",
            plan["topic"],
            plan["target_topic"],
            wanted,
        )
    target_partitions = kafka.ensure_topic(plan["target_topic"], partitions=wanted)
    producer = kafka.producer()
    end_offset = window.get("end_offset")
    for entry in files:
        remaining = None if limit is None else limit - summary["produced"]
        if remaining is not None and remaining <= 0:
            break
        local = spool / f"{entry['partition']}-{entry['first_offset']}.parquet"
        try:
            s3.client.download_file(plan["bucket"], entry["key"], str(local))
        except Exception as exc:
            if "InvalidObjectState" in str(exc):
                raise ObjectNotRestoredError(
                    f"s3://{plan['bucket']}/{entry['key']} is {entry.get('storage_class')} and not restored"
                ) from None
            raise
        try:
            result = kafka.replay_file(
                local,
                entry,
                target_topic=plan["target_topic"],
                target_partitions=target_partitions,
                first_offset=window.get("start_offset"),
                last_offset=None if end_offset is None else end_offset - 1,
                start_ms=window.get("start_ms"),
                end_ms=window.get("end_ms"),
                max_records=remaining,
                producer=producer,
            )
        finally:
            local.unlink(missing_ok=True)
        summary["produced"] += result.produced
        for partition, count in result.by_partition.items():
            key = str(partition)
            summary["by_partition"][key] = summary["by_partition"].get(key, 0) + count
        log.info("replayed %s: %d record(s) (%d so far)", entry["key"], result.produced, summary["produced"])
    return summary
