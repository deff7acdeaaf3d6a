"""What a catch-up re-feeds after a restore, per topic partition, and where each range comes from.

A restored recovery point P holds every event below the ingest offsets its manifest recorded
(``details.ingest_offsets``, read just before its BACKUP started). The events from there to the
live end are re-fed: the part Kafka still holds from the topic, the part retention deleted from
the verified weekly archives (their offset ranges must cover it without a hole), archive first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from backup_pipelines.core.manifest import Manifest

Mode = Literal["reset_group", "replay_topic"]


class PartitionPlan(BaseModel):
    """One topic partition of a catch-up. Offsets are ``[from, to)``.

    ``recorded``: per group, the offset the point recorded (everything below is in the backup);
    ``low``: the first offset Kafka still holds; ``end``: the partition's end when planned;
    ``upper``: per group, where its re-feed stops (the end, or, with ``replay_topic``, the offset
    the running ingestion has committed: it consumes the rest itself).
    """

    topic: str
    partition: int
    recorded: dict[str, int]
    low: int
    end: int
    upper: dict[str, int]
    holes: list[tuple[int, int]] = []
    files: list[dict[str, Any]] = []

    @property
    def label(self) -> str:
        return f"{self.topic}[{self.partition}]"

    @property
    def start(self) -> int:
        """The first offset any group needs again."""
        return min(self.recorded.values())

    @property
    def stop(self) -> int:
        return max(self.upper.values())

    @property
    def archive_range(self) -> tuple[int, int] | None:
        """Offsets retention deleted that the catch-up needs: read from the archives."""
        to = min(self.low, self.stop)
        return (self.start, to) if self.start < to else None

    @property
    def topic_range(self) -> tuple[int, int] | None:
        """Offsets the topic still holds that the catch-up needs."""
        since = max(self.start, self.low)
        return (since, self.stop) if since < self.stop else None

    def describe_holes(self) -> list[str]:
        return [
            f"{self.label}: offsets {a}-{b - 1} deleted by retention and in no verified archive"
            for a, b in self.holes
        ]


class CatchUpPlan(BaseModel):
    """What ``replay_since_capture`` does after restoring ``recovery_point_id`` (the dry run shows it)."""

    dataset: str
    database: str
    recovery_point_id: str
    captured_at: datetime
    offsets_read_at: datetime | None
    planned_at: datetime
    mode: Mode
    groups: list[str]
    replay_topic_suffix: str
    partitions: list[PartitionPlan]
    dry_run: bool = False

    @property
    def holes(self) -> list[str]:
        return [line for p in self.partitions for line in p.describe_holes()]

    @property
    def archive_files(self) -> list[dict[str, Any]]:
        return [f for p in self.partitions for f in p.files]

    def summary(self) -> dict[str, Any]:
        """Plain JSON: the window and, per partition, the ranges and their sources."""
        return {
            "dataset": self.dataset,
            "recovery_point_id": self.recovery_point_id,
            "mode": self.mode,
            "window": {
                "from": (self.offsets_read_at or self.captured_at).isoformat(),
                "to": self.planned_at.isoformat(),
            },
            "dry_run": self.dry_run,
            "holes": self.holes,
            "partitions": {
                p.label: {
                    "recorded": p.recorded,
                    "low_watermark": p.low,
                    "end": p.end,
                    "archive": list(p.archive_range) if p.archive_range else None,
                    "archive_files": len(p.files),
                    "topic": list(p.topic_range) if p.topic_range else None,
                }
                for p in self.partitions
            },
        }


def recorded_offsets(point: Manifest) -> dict[str, dict[str, dict[int, int]]] | None:
    """The point's ingest offsets (group -> topic -> partition -> offset); None when it has none."""
    raw = point.details.get("ingest_offsets")
    if not raw:
        return None
    return {
        group: {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in topics.items()}
        for group, topics in raw.items()
    }


def archived_ranges(points: Iterable[Manifest], topic: str) -> dict[int, list[tuple[int, int]]]:
    """Per partition, the ``[start, end)`` offset ranges the given archive points hold, sorted."""
    out: dict[int, list[tuple[int, int]]] = {}
    for point in points:
        for rng in point.offsets:
            if rng.topic == topic and rng.end_offset > rng.start_offset:
                out.setdefault(rng.partition, []).append((rng.start_offset, rng.end_offset))
    return {p: sorted(r) for p, r in out.items()}


def uncovered(ranges: Sequence[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` no range covers (ranges sorted by start)."""
    holes: list[tuple[int, int]] = []
    cursor = start
    for a, b in ranges:
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            holes.append((cursor, a))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        holes.append((cursor, end))
    return holes


def partition_plan(
    topic: str,
    partition: int,
    *,
    recorded: dict[str, int],
    low: int,
    end: int,
    upper: dict[str, int],
    archived: Sequence[tuple[int, int]],
) -> PartitionPlan:
    """One partition's plan; the holes are what neither the topic nor an archive holds."""
    plan = PartitionPlan(topic=topic, partition=partition, recorded=recorded, low=low, end=end, upper=upper)
    gap = plan.archive_range
    if gap is not None:
        plan.holes = uncovered(archived, *gap)
    return plan
