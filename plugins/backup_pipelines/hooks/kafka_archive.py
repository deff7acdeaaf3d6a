"""Kafka I/O of the weekly archive and the replay: watermarks, retention, offset-exact consumption,
archive-file verification and replay, all through the apache-kafka provider's hooks.

Coverage is by offsets, never by clock. A partition is read from a start offset (the previous
archive's end) up to the first record whose timestamp is at or after the window end, or to the
end of the partition. The end is learnt from the partition-EOF event, not from
``get_watermark_offsets``: the embedded broker (Tansu) answers ``(0, 1)`` there after 1000
records, while its fetch responses carry the true high watermark. Tansu also answers offset 0 to
``offsets_for_times``, so a time-based start is treated as a lower bound and the records before
the window start are skipped while reading.

The consumer never moves a live consumer group: partitions are assigned manually, under the
archiver's own group id, and nothing is committed.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

from backup_pipelines.errors import (
    BackupPipelinesError,
    ChecksumMismatchError,
    OffsetGapError,
    VerificationError,
)
from backup_pipelines.kafka_parquet import (
    ArchiveFile,
    PartitionArchiveWriter,
    Record,
    file_sha256,
    read_records,
)

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer

log = logging.getLogger(__name__)

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
    gaps: list[tuple[int, int]] = field(default_factory=list)
    high_watermark: int | None = None


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
    ) -> None:
        self.result = result
        self.start = start_offset
        self.expected = start_offset
        self.skip_before_ms = skip_before_ms
        self.end_time_ms = end_time_ms
        self.max_records = max_records
        self.done = False

    @property
    def label(self) -> str:
        return f"{self.result.topic}[{self.result.partition}]"

    def _stop(self, end_offset: int, reason: str) -> None:
        self.result.end_offset = end_offset
        self.result.stopped_by = reason
        self.done = True

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
                self.result.gaps.append((self.expected, high))
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
            if result.records == 0 and self.expected == self.start:
                raise OffsetGapError(
                    f"{self.label}: offsets {self.expected}-{offset - 1} are missing: the first record "
                    f"read is at {offset}; they were deleted before they were archived"
                )
            result.gaps.append((self.expected, offset))
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
    ) -> None:
        self.kafka_conn_id = kafka_conn_id
        self.group_id = group_id
        self.poll_timeout = poll_timeout
        self.stall_timeout = stall_timeout
        self.batch_size = batch_size

    # -- clients ---------------------------------------------------------------------------------
    def consumer(self, **overrides: Any) -> Consumer:
        """A consumer for manual assignment under the archiver's own group id; it commits nothing."""
        settings = {"group.id": self.group_id, **ARCHIVE_CONSUMER_OVERRIDES, **overrides}
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

    def watermarks(self, topic: str, partition: int, *, timeout: float = 30.0) -> tuple[int, int]:
        """(low, high) watermarks as the broker reports them. The high one may be wrong on some
        brokers (see the module doc); callers only trust ``low`` and learn the end by reading."""
        from confluent_kafka import TopicPartition

        consumer = self.consumer()
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            return int(low), int(high)
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
        cursor = _Cursor(result, start_offset, skip_before_ms, end_time_ms, max_records)
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
            "before the window, %d gap(s)",
            topic,
            partition,
            result.start_offset,
            result.end_offset,
            result.records,
            len(entries),
            result.stopped_by,
            result.skipped_before_window,
            len(result.gaps),
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
        *,
        allow_gaps_inside: bool = False,
    ) -> list[str]:
        """Problems that break gap-free, overlap-free coverage; empty when the archive is sound.

        ``ranges`` are the partitions' ``[start_offset, end_offset)`` (with ``records`` and
        ``gaps``), ``entries`` the files' index entries, ``previous_end`` the end offset of each
        partition in the previous archive.
        """
        problems: list[str] = []
        by_partition: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for entry in entries:
            by_partition.setdefault((entry["topic"], entry["partition"]), []).append(entry)
        for rng in ranges:
            tp = (rng["topic"], rng["partition"])
            label = f"{tp[0]}[{tp[1]}]"
            start, end = rng["start_offset"], rng["end_offset"]
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
            for entry in files:
                if entry["first_offset"] < cursor:
                    problems.append(f"{label}: file {entry['key']} overlaps offsets before {cursor}")
                elif entry["first_offset"] > cursor and not allow_gaps_inside:
                    problems.append(f"{label}: offsets {cursor}-{entry['first_offset'] - 1} are in no file")
                if entry["last_offset"] >= end:
                    problems.append(f"{label}: file {entry['key']} holds offsets at or after the end {end}")
                cursor = entry["last_offset"] + 1
                count += entry["records"]
            if cursor < end and not allow_gaps_inside:
                problems.append(f"{label}: offsets {cursor}-{end - 1} are in no file")
            if count != rng.get("records", count):
                problems.append(f"{label}: files hold {count} records, the read counted {rng['records']}")
            if not allow_gaps_inside and count != end - start:
                problems.append(
                    f"{label}: {end - start} offsets in [{start}, {end}) but {count} records archived"
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
            path, first_offset=first_offset, last_offset=last_offset, limit=max_records
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
        for name in ("key", "value", "timestamp_ms"):
            if getattr(want, name) != getattr(got, name):
                problems.append(f"record {i} (archived offset {want.offset}): {name} differs")
        if (want.headers or []) != (got.headers or []):
            problems.append(f"record {i} (archived offset {want.offset}): headers differ")
        if len(problems) >= 20:
            problems.append("... (stopped after 20 differences)")
            break
    return problems
