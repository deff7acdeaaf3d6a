"""Kafka through the apache-kafka provider's hooks: clients, topic metadata, watermarks, reads.

The archiver never moves a live consumer group: partitions are assigned manually, under the
archiver's own group id, and nothing is committed. Topics are never created here except the
replay's target (``ensure_topic``): every client runs with ``allow.auto.create.topics=false``
(librdkafka's default is true for producers, and the admin client is one), so asking about a
topic that does not exist never creates it on a broker that auto-creates topics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

from backup_pipelines.core.errors import BackupPipelinesError, SourceNotFoundError
from backup_pipelines.kafka.cursor import ReadCursor, ReadResult
from backup_pipelines.kafka.parquet import Record, RecordColumns

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer

    from backup_pipelines.core.config import BackupConfig

log = logging.getLogger(__name__)


# Asking for a topic's metadata must never create it, whatever the client type.
NO_AUTO_CREATE: dict[str, Any] = {"allow.auto.create.topics": False}
# Consumer settings the archiver always overrides, whatever the connection says.
ARCHIVE_CONSUMER_OVERRIDES: dict[str, Any] = {
    **NO_AUTO_CREATE,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    # An offset that is gone must be an error, never a silent jump to the earliest/latest record.
    "auto.offset.reset": "error",
    "isolation.level": "read_committed",
}
# Consumer defaults a connection may override. librdkafka waits fetch.queue.backoff.ms (1 s) before
# fetching again once queued.min.messages (100,000) are queued: a reader faster than that is held to
# about 100,000 records a second by the pause, not by the broker. Without the pause, a smaller
# prefetch keeps the reader fed and the memory of records fetched ahead of the archive low.
ARCHIVE_CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.queue.backoff.ms": 0, "queued.min.messages": 20_000}
REPLAY_PRODUCER_OVERRIDES: dict[str, Any] = {
    **NO_AUTO_CREATE,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
}


class _ConfiguredConsumerHook(KafkaConsumerHook):
    """The provider's consumer hook: defaults under the connection's config, overrides over it."""

    def __init__(
        self, *, kafka_config_id: str, overrides: dict[str, Any], defaults: dict[str, Any] | None = None
    ) -> None:
        super().__init__(topics=[], kafka_config_id=kafka_config_id)
        self.overrides = overrides
        self.defaults = defaults or {}

    def _get_client(self, config: dict[str, Any]) -> Consumer:
        return super()._get_client({**self.defaults, **config, **self.overrides})


class _ConfiguredAdminHook(KafkaAdminClientHook):
    def _get_client(self, config: dict[str, Any]) -> Any:
        return super()._get_client({**config, **NO_AUTO_CREATE})


class _ConfiguredProducerHook(KafkaProducerHook):
    def __init__(self, *, kafka_config_id: str, overrides: dict[str, Any]) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.overrides = overrides

    def _get_client(self, config: dict[str, Any]) -> Producer:
        merged = {k: v for k, v in config.items() if k not in ("group.id", "enable.auto.commit")}
        return super()._get_client({**merged, **self.overrides})


class KafkaClient:
    """Everything the archive, the replay and the drill do against Kafka, from one connection id."""

    def __init__(
        self,
        *,
        kafka_conn_id: str = "kafka_default",
        group_id: str = "backup-pipelines-archiver",
        poll_timeout: float = 0.1,
        stall_timeout: float = 120.0,
        batch_size: int = 5_000,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self.consumer_config = dict(consumer_config or {})
        self.kafka_conn_id = kafka_conn_id
        self.group_id = group_id
        self.poll_timeout = poll_timeout
        self.stall_timeout = stall_timeout
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg: BackupConfig, *, group_id: str | None = None) -> KafkaClient:
        return cls(
            kafka_conn_id=cfg.connections.kafka, group_id=group_id or cfg.kafka_archive.consumer_group_id
        )

    # -- clients ---------------------------------------------------------------------------------
    def consumer(self, **overrides: Any) -> Consumer:
        """A consumer for manual assignment under the archiver's own group id; it commits nothing."""
        settings = {
            "group.id": self.group_id,
            **self.consumer_config,
            **ARCHIVE_CONSUMER_OVERRIDES,
            **overrides,
        }
        return _ConfiguredConsumerHook(
            kafka_config_id=self.kafka_conn_id, overrides=settings, defaults=ARCHIVE_CONSUMER_DEFAULTS
        ).get_conn

    def producer(self, **overrides: Any) -> Producer:
        settings = {**REPLAY_PRODUCER_OVERRIDES, **overrides}
        return _ConfiguredProducerHook(kafka_config_id=self.kafka_conn_id, overrides=settings).get_conn

    def admin(self) -> Any:
        return _ConfiguredAdminHook(kafka_config_id=self.kafka_conn_id).get_conn

    # -- metadata --------------------------------------------------------------------------------
    def topics(self, *, timeout: float = 30.0) -> dict[str, list[int]]:
        """Every topic on the cluster with its partition ids (one metadata request for all topics,
        which creates none)."""
        metadata = self.admin().list_topics(timeout=timeout)
        return {
            name: sorted(info.partitions)
            for name, info in metadata.topics.items()
            if info.error is None and info.partitions
        }

    def partitions(self, topic: str, *, timeout: float = 30.0) -> list[int]:
        """Partition ids of a topic; raises ``SourceNotFoundError`` naming the topic and the
        closest existing names when it does not exist."""
        existing = self.topics(timeout=timeout)
        if topic not in existing:
            raise SourceNotFoundError(missing_topic_message(topic, existing))
        return existing[topic]

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
    def read_batches(
        self,
        topic: str,
        partition: int,
        start_offset: int,
        result: ReadResult,
        *,
        end_offset: int | None = None,
        skip_before_ms: int | None = None,
        max_records: int | None = None,
        consumer: Consumer | None = None,
    ) -> Iterator[RecordColumns]:
        """Yield the records of ``[start_offset, cut)`` in offset order, a consumed batch at a
        time, and fill ``result``.

        The cut is ``end_offset`` (not yielded), the end of the partition, or ``max_records``.
        With ``skip_before_ms`` the leading records older than it are skipped (a time-based start
        on a broker whose ``offsets_for_times`` answers early). A record missing at the start
        means it was deleted before it was read: ``OffsetGapError``. Broker outages are waited
        out up to ``stall_timeout`` seconds without progress, then the task fails and retries
        from the same start.
        """
        from confluent_kafka import TopicPartition

        own = consumer is None
        client = consumer or self.consumer()
        cursor = ReadCursor(
            result,
            start_offset,
            skip_before_ms,
            end_offset,
            max_records,
            low_watermark=lambda: self.watermarks(topic, partition, consumer=client)[0],
        )
        last_progress = time.monotonic()
        try:
            if not cursor.done:
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
                yield from _accepted(cursor, messages)
                cursor.prove_if_due()
        finally:
            if own:
                client.close()

    def read_partition(
        self, topic: str, partition: int, start_offset: int, result: ReadResult, **options: Any
    ) -> Iterator[Record]:
        """``read_batches`` one record at a time (for comparisons and small reads)."""
        for columns in self.read_batches(topic, partition, start_offset, result, **options):
            yield from columns.records(topic, partition)

    # -- topics ----------------------------------------------------------------------------------
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


def _accepted(cursor: ReadCursor, messages: list[Message]) -> Iterator[RecordColumns]:
    """The records of one consumed batch that belong to the read; error events (the end of the
    partition, a transient error) go to the cursor in their place in the batch."""
    errors = [m.error() for m in messages]
    # A KafkaError is truthy (and cannot be compared with None): filter finds one at C speed.
    bounds = [i for i, e in enumerate(errors) if e is not None] if any(filter(None, errors)) else []
    begin = 0
    for end in [*bounds, len(messages)]:
        if end > begin and not cursor.done:
            columns = RecordColumns.of(messages[begin:end] if end - begin < len(messages) else messages)
            i, j = cursor.take(columns.offsets, columns.stamps)
            if j > i:
                yield columns.slice(i, j)
        if end < len(messages) and not cursor.done:
            cursor.on_error(messages[end])
        begin = end + 1


def missing_topic_message(topic: str, existing: Iterable[str]) -> str:
    """One line naming a configured topic the cluster does not have, and the closest names it has."""
    import difflib

    names = sorted(existing)
    close = difflib.get_close_matches(topic, names, n=3, cutoff=0.6)
    hint = f"closest existing: {', '.join(close)}" if close else f"{len(names)} topic(s) exist, none close"
    return f"Kafka topic {topic!r} does not exist on the cluster ({hint})"
