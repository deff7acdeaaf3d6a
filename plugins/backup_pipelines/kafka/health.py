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
from typing import TYPE_CHECKING, Any

from backup_pipelines.core.config import human_duration
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.kafka.parquet import ms_to_datetime
from backup_pipelines.kafka.probe import PartitionProbe, probe

if TYPE_CHECKING:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.manifest import Manifest
    from backup_pipelines.kafka.client import KafkaClient


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
    for partition, seen in sorted(probes.items()):
        oldest = oldest_pending_at(seen, written_after.get(partition))
        if oldest is None or now - oldest <= limit:
            continue
        age = now - oldest
        found.append(
            Backlog(topic, partition, seen.offset, seen.end_offset, oldest, age, retention_ms, grace)
        )
    return found


@dataclass(frozen=True)
class TopicHealth:
    """A topic against its archives: partitions whose backlog is at risk, and when it last got a
    record (as far as timestamps and the archive cuts tell)."""

    topic: str
    at_risk: list[Backlog]
    last_record_at: datetime | None

    def idle_warning(self, rpo: timedelta, now: datetime) -> str | None:
        """``no records since ...`` when the topic received nothing for longer than ``rpo``."""
        if self.last_record_at is not None and now - self.last_record_at <= rpo:
            return None
        since = f"{self.last_record_at:%Y-%m-%d %H:%M:%S} UTC" if self.last_record_at else "its first archive"
        return (
            f"topic {self.topic!r}: no records since {since} (longer than its RPO of "
            f"{human_duration(rpo.total_seconds())}): is it idle or abandoned?"
        )


def topic_health(
    kafka: KafkaClient,
    catalog: Catalog,
    topic: str,
    partitions: list[int],
    *,
    grace: timedelta,
    now: datetime,
    timeout: float = 10.0,
) -> TopicHealth:
    """Probe each partition where its newest archive ends (the low watermark when no archive has
    it): the oldest record not archived yet, against ``retention.ms`` minus ``grace``; and the
    newest record, for an idle topic."""
    ends: dict[int, int] = {}
    cut_at: dict[int, datetime | None] = {}
    archived_last: list[datetime] = []
    points = catalog.list_points(DatasetKind.KAFKA_ARCHIVE, topic).points
    for point in sorted(points, key=lambda p: p.interval_end or p.captured_at):
        for rng in point.offsets:
            ends[rng.partition], cut_at[rng.partition] = rng.end_offset, cut_observed_at(point)
        archived_last += [o.last_timestamp for o in point.objects if o.last_timestamp is not None]
    lows = {p: low for p, (low, _) in kafka.partition_watermarks(topic, partitions).items()}
    probes = probe(kafka, topic, {p: max(ends.get(p, lows[p]), lows[p]) for p in partitions}, timeout=timeout)
    at_risk = backlog_at_risk(
        topic,
        probes,
        written_after=cut_at,
        retention_ms=kafka.retention_ms(topic),
        grace=grace,
        now=now,
    )
    # The newest record of a partition with records after its archive: the one before its end.
    pending = {p: seen.end_offset - 1 for p, seen in probes.items() if seen.pending}
    newest = probe(kafka, topic, pending, timeout=timeout)
    candidates = [*archived_last]
    for partition in pending:
        for seen in (newest.get(partition), probes[partition]):
            written = oldest_pending_at(seen, cut_at.get(partition)) if seen is not None else None
            if written is not None:
                candidates.append(written)
                break
    return TopicHealth(topic, at_risk, max(candidates) if candidates else None)


def cut_observed_at(manifest: Manifest) -> datetime | None:
    """When the cut that ends ``manifest`` was observed (its window end for archives made before
    the cut was recorded)."""
    observed = manifest.details.get("cut_observed_at")
    return datetime.fromisoformat(observed) if observed else manifest.interval_end
