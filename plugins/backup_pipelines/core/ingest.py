"""The ingest consumer groups of a ClickHouse dataset: their committed offsets, state and reset.

A ClickHouse dataset fed from Kafka names its topics and consumer groups (``ingest`` in its
config). The snapshot reads the groups' **committed** offsets just before its ``BACKUP`` starts:
an ingestion that commits after inserting has every event below them in its tables already, so
the backup holds them (``SnapshotService.prepare`` records them in the manifest's details as
``ingest_offsets``: group -> topic -> partition -> offset). A zero-loss restore
(``backup_pipelines.recovery``) reads them back, and resets a group with ``reset``.

Kafka is reached through the apache-kafka provider's hooks with ``allow.auto.create.topics=false``:
asking about a topic never creates it. Nothing here joins a group or commits for it except
``reset``, which only an empty group accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

from backup_pipelines.core import clock
from backup_pipelines.core.errors import SourceNotFoundError, UnsafeOperationError

if TYPE_CHECKING:
    from confluent_kafka import Consumer

    from backup_pipelines.core.config import BackupConfig, ClickHouseDataset

log = logging.getLogger(__name__)

NO_AUTO_CREATE: dict[str, Any] = {"allow.auto.create.topics": False}
# Group states in which Kafka accepts an offset reset (no member holds the partitions).
RESETTABLE_STATES = frozenset({"EMPTY", "DEAD", "UNKNOWN"})

#: group -> topic -> partition (a string: JSON keys) -> committed offset
GroupOffsets = dict[str, dict[str, dict[str, int]]]


class _AdminHook(KafkaAdminClientHook):
    def _get_client(self, config: dict[str, Any]) -> Any:
        return super()._get_client({**config, **NO_AUTO_CREATE})


class _WatermarkConsumerHook(KafkaConsumerHook):
    """A consumer that only asks for watermarks: its own group id, no commits, no topic creation."""

    def __init__(self, *, kafka_config_id: str) -> None:
        super().__init__(topics=[], kafka_config_id=kafka_config_id)

    def _get_client(self, config: dict[str, Any]) -> Consumer:
        settings = {**config, "group.id": "backup-pipelines-ingest-offsets", "enable.auto.commit": False}
        return super()._get_client({**settings, **NO_AUTO_CREATE})


class IngestGroups:
    """Committed offsets, state and reset of ingest consumer groups, from one Kafka connection."""

    def __init__(self, kafka_conn_id: str, *, timeout: float = 30.0) -> None:
        self.kafka_conn_id = kafka_conn_id
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> IngestGroups:
        return cls(cfg.connections.kafka)

    def admin(self) -> Any:
        return _AdminHook(kafka_config_id=self.kafka_conn_id).get_conn

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids; ``SourceNotFoundError`` when the cluster has no such topic."""
        found = self.admin().list_topics(topic=topic, timeout=self.timeout).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise SourceNotFoundError(f"ingest topic {topic!r} does not exist on the Kafka cluster")
        return sorted(found.partitions)

    def committed(self, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
        """The group's committed offset per partition; None where it has committed none."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
        admin = self.admin()
        futures = admin.list_consumer_group_offsets([request], request_timeout=self.timeout)
        answer = futures[group].result(timeout=self.timeout)
        out: dict[int, int | None] = {}
        for tp in answer.topic_partitions:
            if tp.error is not None:
                raise SourceNotFoundError(f"group {group!r}, {topic}[{tp.partition}]: {tp.error}")
            out[int(tp.partition)] = int(tp.offset) if tp.offset >= 0 else None
        return out

    def low_watermarks(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The first offset each partition still holds (what retention has not deleted)."""
        from confluent_kafka import TopicPartition

        consumer = _WatermarkConsumerHook(kafka_config_id=self.kafka_conn_id).get_conn
        try:
            return {
                p: int(
                    consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=self.timeout, cached=False
                    )[0]
                )
                for p in partitions
            }
        finally:
            consumer.close()

    def state(self, group: str) -> str:
        """The group's state as Kafka reports it (``EMPTY``, ``STABLE``, ``DEAD``...)."""
        admin = self.admin()
        described = admin.describe_consumer_groups([group], request_timeout=self.timeout)[group]
        state = described.result(timeout=self.timeout).state
        return str(getattr(state, "name", state)).upper()

    def check_resettable(self, group: str) -> None:
        """``UnsafeOperationError`` when the group has members (Kafka refuses a reset then)."""
        state = self.state(group)
        if state not in RESETTABLE_STATES:
            raise UnsafeOperationError(
                f"consumer group {group!r} is {state}: stop the ingestion that consumes with it "
                "before its offsets are reset"
            )

    def reset(self, group: str, offsets: Mapping[str, Mapping[int, int]]) -> None:
        """Set the group's committed offsets (topic -> partition -> offset); refused while the
        group has members (stop the ingestion first: Kafka refuses it too, less clearly)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        self.check_resettable(group)
        wanted = [TopicPartition(t, p, o) for t, parts in offsets.items() for p, o in sorted(parts.items())]
        admin = self.admin()
        request = ConsumerGroupTopicPartitions(group, wanted)
        answer = admin.alter_consumer_group_offsets([request], request_timeout=self.timeout)[group]
        for tp in answer.result(timeout=self.timeout).topic_partitions:
            if tp.error is not None:
                raise UnsafeOperationError(
                    f"reset of group {group!r} at {tp.topic}[{tp.partition}]: {tp.error}"
                )
        log.info("Reset consumer group %s: %s", group, {t: dict(p) for t, p in offsets.items()})


def read_ingest_offsets(groups: IngestGroups, dataset: ClickHouseDataset) -> GroupOffsets:
    """Every ingest group's committed offset per topic partition; where a group has committed
    none, the partition's low watermark (every event it still holds may be missing)."""
    assert dataset.ingest is not None
    out: GroupOffsets = {}
    for topic in dataset.ingest.topics:
        partitions = groups.partitions(topic)
        lows: dict[int, int] | None = None
        for group in dataset.ingest.consumer_groups:
            committed = groups.committed(group, topic, partitions)
            if any(v is None for v in committed.values()) and lows is None:
                lows = groups.low_watermarks(topic, partitions)
            out.setdefault(group, {})[topic] = {
                str(p): (v if v is not None else (lows or {}).get(p, 0)) for p, v in sorted(committed.items())
            }
    return out


def capture_ingest_offsets(cfg: BackupConfig, dataset: ClickHouseDataset) -> dict[str, Any]:
    """The manifest details of a snapshot's ingest offsets; call it just before ``BACKUP`` starts.

    ``{}`` for a dataset without ``ingest``. When Kafka cannot be asked, the snapshot still goes
    ahead (a snapshot restore needs no offsets) and records ``ingest_error``: that point cannot
    be replayed from, and the effective RPO counts from an older point that can.
    """
    if dataset.ingest is None:
        return {}
    read_at = clock.utcnow()
    try:
        offsets = read_ingest_offsets(IngestGroups.from_config(cfg), dataset)
    except Exception as exc:  # the snapshot matters more than its replay point
        log.warning("Ingest offsets of %s not recorded (no replay from this point): %s", dataset.name, exc)
        return {"ingest_error": f"{type(exc).__name__}: {exc}", "ingest_read_at": read_at.isoformat()}
    log.info("Ingest offsets of %s before the BACKUP: %s", dataset.name, offsets)
    return {"ingest_offsets": offsets, "ingest_read_at": read_at.isoformat()}
