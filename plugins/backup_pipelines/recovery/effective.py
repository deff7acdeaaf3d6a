"""Effective RPO of a ClickHouse dataset fed from Kafka: what a restore with replay recovers now.

The snapshot RPO counts from the newest verified point. With ``ingest``, a restore can also
re-feed the events since a point's recorded offsets, so what is recoverable now is the newest
verified point with ingest offsets plus, per topic partition, the topic from its low watermark
and the verified archives for what retention deleted before that, without a hole. When that
holds, nothing Kafka received is lost (effective data at risk: 0 s, as of the measurement);
otherwise the effective RPO is the snapshot's age, and the holes are named.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backup_pipelines.clickhouse.snapshot import KIND
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, ClickHouseDataset, human_duration
from backup_pipelines.core.ingest import IngestGroups
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.recovery.plan import archived_ranges, recorded_offsets, uncovered

log = logging.getLogger(__name__)


class EffectiveRpo(BaseModel):
    """What is recoverable now for one dataset with ``ingest`` (the monitor's status shows it)."""

    dataset: str
    seconds: float | None  # data at risk now; None when it could not be measured
    point: str | None = None  # the point a replay would start from
    from_archives: int = 0  # offsets retention deleted that the archives hold
    holes: list[str] = []
    text: str

    def as_status(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _partition_gaps(
    groups: IngestGroups, catalog: Catalog, topic: str, recorded: dict[str, dict[str, dict[int, int]]]
) -> tuple[int, list[str]]:
    """(offsets retention deleted that the archives hold, holes) of one topic."""
    partitions = groups.partitions(topic)
    lows = groups.low_watermarks(topic, partitions)
    archived = archived_ranges(catalog.list_points(DatasetKind.KAFKA_ARCHIVE, topic).verified(), topic)
    from_archives = 0
    holes: list[str] = []
    for p in partitions:
        start = min((r.get(topic, {}).get(p, 0) for r in recorded.values()), default=0)
        if start >= lows[p]:
            continue
        missing = uncovered(archived.get(p, []), start, lows[p])
        from_archives += lows[p] - start - sum(b - a for a, b in missing)
        holes += [
            f"{topic}[{p}] offsets {a}-{b - 1} deleted by retention and in no verified archive"
            for a, b in missing
        ]
    return from_archives, holes


def effective_rpo(
    catalog: Catalog, groups: IngestGroups, dataset: ClickHouseDataset, *, now: datetime
) -> EffectiveRpo:
    """The effective RPO of one dataset with ``ingest`` (see the module doc)."""
    assert dataset.ingest is not None
    verified = [p for p in catalog.list_points(KIND, dataset.name).verified() if p.captured_at <= now]
    newest = verified[-1] if verified else None
    snapshot_age = (now - newest.captured_at).total_seconds() if newest else None
    with_offsets: list[Manifest] = [p for p in reversed(verified) if recorded_offsets(p)]
    if not with_offsets:
        return EffectiveRpo(
            dataset=dataset.name,
            seconds=snapshot_age,
            text="no verified point recorded ingest offsets: the snapshot RPO is the effective one",
        )
    point = with_offsets[0]
    recorded = recorded_offsets(point) or {}
    from_archives, holes = 0, []
    for topic in dataset.ingest.topics:
        archived, found = _partition_gaps(groups, catalog, topic, recorded)
        from_archives += archived
        holes += found
    if holes:
        return EffectiveRpo(
            dataset=dataset.name,
            seconds=snapshot_age,
            point=point.recovery_point_id,
            from_archives=from_archives,
            holes=holes,
            text=f"replay since {point.recovery_point_id} has a hole ({'; '.join(holes[:3])}): "
            f"effective RPO = snapshot age {human_duration(snapshot_age or 0)}",
        )
    via = f", {from_archives} offsets from the archives" if from_archives else ""
    return EffectiveRpo(
        dataset=dataset.name,
        seconds=0.0,
        point=point.recovery_point_id,
        from_archives=from_archives,
        text=f"0s: {point.recovery_point_id} + Kafka since its offsets{via}, no hole "
        f"(as of {now:%Y-%m-%d %H:%M:%S} UTC)",
    )


def effective_rpos(
    cfg: BackupConfig, catalog: Catalog, *, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Effective RPO per ``<kind>/<dataset>`` key, for every ClickHouse dataset with ``ingest``.

    One dataset's trouble (Kafka unreachable, a topic gone) becomes its entry's text; the others
    are still measured."""
    at = now or clock.utcnow()
    groups = IngestGroups(cfg.connections.kafka, timeout=10.0)
    out: dict[str, dict[str, Any]] = {}
    for dataset in cfg.clickhouse_snapshots.datasets:
        if dataset.ingest is None:
            continue
        key = f"{KIND}/{dataset.name}"
        try:
            found = effective_rpo(catalog, groups, dataset, now=at)
        except Exception as exc:  # the monitor reports it, never crashes on it
            log.warning("RPO: effective RPO of %s not measured: %s", key, exc)
            found = EffectiveRpo(
                dataset=dataset.name, seconds=None, text=f"unknown ({type(exc).__name__}: {exc})"
            )
        out[key] = found.as_status()
    return out
