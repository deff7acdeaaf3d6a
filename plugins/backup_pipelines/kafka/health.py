"""Records Kafka holds that no archive has yet: how old the oldest is against the topic's retention
(the backlog at risk), and when a topic last received a record (an idle topic). Used by the weekly
archive's guard and by the RPO monitor.

Ages come from record timestamps, which producers set. A record that comes after an archive's cut
was written after the cut was observed, so its age is taken from that moment when its timestamp
says it is older (a producer clock behind, or no timestamp): Kafka's time-based retention deletes
a segment by its newest timestamp, not by one skewed record in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup_pipelines.core.config import human_duration
from backup_pipelines.kafka.parquet import ms_to_datetime
from backup_pipelines.kafka.probe import PartitionProbe


@dataclass(frozen=True)
class Backlog:
    """Offsets of a partition not archived yet whose oldest record is close to Kafka's retention."""

    topic: str
    partition: int
    first_offset: int
    end_offset: int
    oldest_at: datetime
    age: timedelta
    retention_ms: int
    grace: timedelta

    def describe(self) -> str:
        retention = human_duration(self.retention_ms / 1000)
        return (
            f"{self.topic}[{self.partition}]: offsets {self.first_offset}-{self.end_offset - 1} are not "
            f"archived; the oldest is {human_duration(self.age.total_seconds())} old "
            f"({self.oldest_at:%Y-%m-%d %H:%M:%S} UTC), past retention.ms={self.retention_ms} "
            f"({retention}) minus the {human_duration(self.grace.total_seconds())} grace"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "first": self.first_offset,
            "last": self.end_offset - 1,
            "oldest_at": self.oldest_at.isoformat(),
        }


def oldest_pending_at(probe: PartitionProbe, written_after: datetime | None) -> datetime | None:
    """When the first record at or after the probed offset was written, as far as it can be told:
    its timestamp, but never before ``written_after`` (when the cut before it was observed)."""
    if probe.first_offset is None:
        return None
    stamped = ms_to_datetime(probe.first_timestamp_ms)
    known = [t for t in (stamped, written_after) if t is not None]
    return max(known) if known else None


def backlog_at_risk(
    topic: str,
    probes: Mapping[int, PartitionProbe],
    *,
    written_after: Mapping[int, datetime | None],
    retention_ms: int | None,
    grace: timedelta,
    now: datetime,
) -> list[Backlog]:
    """Partitions whose oldest record not yet archived is older than retention minus grace.

    ``probes`` are taken at each partition's next offset to archive; ``written_after`` is when
    the cut before that offset was observed (None when unknown). Nothing is at risk on a topic
    without time-based retention.
    """
    if retention_ms is None:
        return []
    limit = timedelta(milliseconds=retention_ms) - grace
    found = []
    for partition, probe in sorted(probes.items()):
        oldest = oldest_pending_at(probe, written_after.get(partition))
        if oldest is None or now - oldest <= limit:
            continue
        found.append(
            Backlog(
                topic, partition, probe.offset, probe.end_offset, oldest, now - oldest, retention_ms, grace
            )
        )
    return found
