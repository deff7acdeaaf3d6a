"""What each partition of a topic holds now, learnt from the fetch path.

A probe reads one record of every partition from a given offset: the first record there (its
offset and timestamp: the oldest record not yet archived when the offset is where the archive
ends) and the end offset a ``read_committed`` reader sees (the partition-EOF event, or the high
watermark the fetch response carried). ``get_watermark_offsets`` is not used for the end: the
embedded broker answers ``(0, 1)`` there after 1000 records and 0 to ``offsets_for_times``, while
its fetch responses carry the true end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backup_pipelines.core.errors import BackupPipelinesError, OffsetGapError
from backup_pipelines.kafka.cursor import raise_unless_transient

if TYPE_CHECKING:
    from backup_pipelines.kafka.client import KafkaClient

# Fetch as little as the broker allows: one batch per partition is enough.
PROBE_CONSUMER: dict[str, Any] = {
    "message.max.bytes": 1000,
    "fetch.max.bytes": 1024,
    "max.partition.fetch.bytes": 1024,
    "queued.min.messages": 1,
    "queued.max.messages.kbytes": 1024,
}


@dataclass(frozen=True)
class PartitionProbe:
    """One partition seen from ``offset``: its first record there (if any) and its end."""

    partition: int
    offset: int
    end_offset: int
    first_offset: int | None = None
    first_timestamp_ms: int | None = None  # None: the record carries no usable timestamp

    @property
    def pending(self) -> int:
        """Offsets from ``offset`` to the end (records, or offsets that hold none)."""
        return max(self.end_offset - self.offset, 0)


def probe(
    kafka: KafkaClient, topic: str, offsets: Mapping[int, int], *, timeout: float = 30.0
) -> dict[int, PartitionProbe]:
    """Probe every partition of ``offsets`` (partition -> offset) over one consumer."""
    from confluent_kafka import TopicPartition

    if not offsets:
        return {}
    consumer = kafka.consumer(**PROBE_CONSUMER)
    found: dict[int, PartitionProbe] = {}
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in offsets.items()])
        while len(found) < len(offsets):
            if time.monotonic() > deadline:
                missing = sorted(set(offsets) - set(found))
                raise BackupPipelinesError(
                    f"{topic}: partitions {missing} gave neither a record nor their end within "
                    f"{timeout:.0f}s; broker unreachable or stalled"
                )
            for message in consumer.consume(len(offsets), timeout=1.0):
                partition = int(message.partition() or 0)
                if partition in offsets and partition not in found:
                    seen = _seen(consumer, topic, offsets[partition], message)
                    if seen is not None:
                        found[partition] = seen
    finally:
        consumer.close()
    return found


def _seen(consumer: Any, topic: str, start: int, message: Any) -> PartitionProbe | None:
    """What one consumed message tells about its partition; None for a transient error."""
    from confluent_kafka import KafkaError, TopicPartition

    partition, offset = int(message.partition() or 0), int(message.offset() or 0)
    error = message.error()
    if error is None:
        ts_type, ts = message.timestamp()
        high = int(consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1])
        stamp = ts if ts_type and ts >= 0 else None
        return PartitionProbe(partition, start, max(high, offset + 1), offset, stamp)
    code = error.code()
    if code == KafkaError._PARTITION_EOF:
        return PartitionProbe(partition, start, offset)
    if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
        raise OffsetGapError(
            f"{topic}[{partition}]: offset {start} is outside what the partition holds "
            f"({error.str()}); was the topic deleted and re-created or truncated?"
        )
    raise_unless_transient(error, f"{topic}[{partition}]")
    return None
