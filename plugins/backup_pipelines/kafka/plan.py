"""The weekly archive's plan (its first task, the retention guard): one spec per topic-partition.

Before anything else, every configured topic must exist (a misspelt topic fails the run before a
task is mapped, naming the closest existing topics; it is never created). Then per partition:

- where the window starts: the previous archive's end (``continue``), the low watermark for a
  partition the previous archive did not have (``earliest``), the window start on a topic's first
  run (``window_start``);
- where it ends, the **cut**: the end offset the partition has when the plan runs, right after
  the window closes, read from the fetch path (``kafka.probe``). Every record written before the
  window closed is below it, whatever its timestamp says;
- what the guard finds: offsets deleted before they were archived (the low watermark is past the
  start), a ``retention.ms`` shorter than the window plus grace, and records not yet archived
  that are older than retention minus grace (``kafka.health``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import KafkaArchive
from backup_pipelines.core.errors import OffsetGapError, SourceNotFoundError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.kafka.archive import recovery_point_id
from backup_pipelines.kafka.client import KafkaClient, missing_topic_message
from backup_pipelines.kafka.health import backlog_at_risk, cut_observed_at
from backup_pipelines.kafka.probe import PartitionProbe, probe
from backup_pipelines.kafka.specs import GuardFinding, PartitionSpec

log = logging.getLogger(__name__)

KIND = DatasetKind.KAFKA_ARCHIVE


def previous_archive(
    catalog: Catalog, topic: str, interval_start: datetime, interval_end: datetime
) -> Manifest | None:
    """The archive a window continues: the newest one that ends at or before its start.

    An archive of a *later* window means this window is being run out of order: refused, as it
    would overlap offsets already archived.
    """
    listing = catalog.list_points(KIND, topic)
    this_id = recovery_point_id(interval_end)
    later = [
        p
        for p in listing.entries  # the index: only the archive continued is read whole
        if p.recovery_point_id != this_id and p.interval_end is not None and p.interval_end > interval_start
    ]
    if later:
        raise OffsetGapError(
            f"topic {topic!r}: archive {later[-1].recovery_point_id} already covers a window "
            f"ending after {interval_start.isoformat()}; archives are made in window order "
            "(offsets would overlap)"
        )
    earlier = [p for p in listing.entries if p.interval_end is not None and p.interval_end <= interval_start]
    if not earlier:
        return None
    return listing.manifest(max(earlier, key=lambda p: p.interval_end or interval_start).recovery_point_id)


class ArchivePlanner:
    """The plan and the guard's findings for one window of every configured topic."""

    def __init__(self, kafka: KafkaClient, catalog: Catalog, section: KafkaArchive) -> None:
        self.kafka = kafka
        self.catalog = catalog
        self.section = section

    def existing_topics(self) -> dict[str, list[int]]:
        """The configured topics with their partitions; ``SourceNotFoundError`` (one line per
        missing topic, with the closest existing names) when any does not exist."""
        existing = self.kafka.topics()
        missing = [t.name for t in self.section.topics if t.name not in existing]
        if missing:
            raise SourceNotFoundError(
                "kafka_archive.topics: " + "; ".join(missing_topic_message(t, existing) for t in missing)
            )
        return {t.name: existing[t.name] for t in self.section.topics}

    def plan(
        self, interval_start: datetime, interval_end: datetime
    ) -> tuple[list[PartitionSpec], list[GuardFinding]]:
        specs: list[PartitionSpec] = []
        findings: list[GuardFinding] = []
        for name, partitions in self.existing_topics().items():
            finding = GuardFinding(name)
            findings.append(finding)
            specs += self._plan_topic(name, partitions, interval_start, interval_end, finding)
        return specs, findings

    def _plan_topic(
        self,
        name: str,
        partitions: list[int],
        interval_start: datetime,
        interval_end: datetime,
        finding: GuardFinding,
    ) -> list[PartitionSpec]:
        rp_id = recovery_point_id(interval_end)

        def spec(partition: int, **fields: Any) -> PartitionSpec:
            return PartitionSpec(
                topic=name,
                partition=partition,
                interval_start=interval_start,
                interval_end=interval_end,
                recovery_point_id=rp_id,
                retention_warning=finding.retention_warning,
                **fields,
            )

        if self.catalog.get(KIND, name, rp_id) is not None:
            fields = {"start_offset": None, "start_mode": "window_start", "previous": None, "existing": True}
            return [spec(p, **fields) for p in partitions]
        previous = previous_archive(self.catalog, name, interval_start, interval_end)
        prev_end = {o.partition: o.end_offset for o in (previous.offsets if previous else [])}
        retention = self.kafka.retention_ms(name)
        finding.retention_warning = self.retention_warning(name, retention, interval_end - interval_start)
        observed_at = clock.utcnow()
        probes = self._guard(
            name,
            partitions,
            previous,
            prev_end=prev_end,
            retention=retention,
            finding=finding,
            now=observed_at,
        )
        specs = []
        for partition in partitions:
            start = prev_end.get(partition)
            mode = "continue" if start is not None else ("earliest" if previous else "window_start")
            cut = probes[partition].end_offset
            log.info("%s[%d]: %s from %s, cut at offset %d", name, partition, mode, start, cut)
            specs.append(
                spec(
                    partition,
                    start_offset=start,
                    start_mode=mode,
                    end_offset=cut,
                    cut_observed_at=observed_at,
                    previous=previous.recovery_point_id if previous else None,
                    existing=False,
                )
            )
        return specs

    def _guard(
        self,
        name: str,
        partitions: list[int],
        previous: Manifest | None,
        *,
        prev_end: dict[int, int],
        retention: int | None,
        finding: GuardFinding,
        now: datetime,
    ) -> dict[int, PartitionProbe]:
        """Each partition probed from its next offset to archive (its end is the cut); offsets
        already deleted and records at risk go into ``finding``."""
        lows = {p: low for p, (low, _) in self.kafka.partition_watermarks(name, partitions).items()}
        for partition, start in sorted(prev_end.items()):
            if partition in lows and lows[partition] > start:
                finding.lost.append({"partition": partition, "first": start, "last": lows[partition] - 1})
        probes = probe(self.kafka, name, {p: max(prev_end.get(p, lows[p]), lows[p]) for p in partitions})
        for partition, start in prev_end.items():
            if partition in probes and probes[partition].end_offset < start:
                raise OffsetGapError(
                    f"{name}[{partition}]: the partition ends at offset {probes[partition].end_offset}, "
                    f"before offset {start} where the archive continues; was the topic deleted and "
                    "re-created or truncated?"
                )
        if previous is not None:
            cut_at = cut_observed_at(previous)
            at_risk = backlog_at_risk(
                name,
                probes,
                written_after={p: cut_at if p in prev_end else None for p in partitions},
                retention_ms=retention,
                grace=self.section.retention_grace,
                now=now,
            )
            finding.at_risk = [backlog.describe() for backlog in at_risk]
        return probes

    def retention_warning(self, topic: str, retention: int | None, window: timedelta) -> str | None:
        needed = window + self.section.retention_grace
        if retention is None or retention >= needed.total_seconds() * 1000:
            return None
        warning = (
            f"topic {topic!r}: retention.ms={retention} ({retention / 3_600_000:.1f} h) is shorter than the "
            f"archive window plus grace ({needed.total_seconds() / 3600:.1f} h); a late or failed run can "
            "lose events before they are archived"
        )
        log.warning("retention guard: %s", warning)
        return warning
