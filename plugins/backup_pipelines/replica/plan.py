"""What the DR region still needs and what it may drop (pure decisions, no I/O).

- **To copy**: every point whose effective state is verified in the primary catalog and that the
  DR catalog lacks, oldest first, so a base always reaches the replica before its increments; an
  increment whose base the replica does not hold (and is not copied in the same run) waits.
- **To drop** (retention in step): a replica point the primary's retention deleted, but never the
  replica's newest verified point, nor any base of a point the replica keeps, nor anything when no
  newer verified replica point covers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backup_pipelines.core.index import IndexEntry
from backup_pipelines.core.manifest import Listing
from backup_pipelines.core.replica import chain_ids


@dataclass
class DatasetPlan:
    """One dataset's replication work (index entries: only the points to copy or drop are read
    whole): points to copy, points waiting on a base, points to drop."""

    copy: list[IndexEntry] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # point id -> why it waits
    drop: list[IndexEntry] = field(default_factory=list)


def to_copy(primary: Listing, replica: Listing) -> tuple[list[IndexEntry], dict[str, str]]:
    """Verified primary points the replica lacks (oldest first), and those waiting on a base."""
    held = {p.recovery_point_id for p in replica.entries}
    copy: list[IndexEntry] = []
    waiting: dict[str, str] = {}
    coming = set(held)
    for point in primary.verified_entries():  # oldest first
        if point.recovery_point_id in held:
            continue
        if point.base and point.base not in coming:
            waiting[point.recovery_point_id] = f"its base {point.base} is not in the replica yet"
            continue
        copy.append(point)
        coming.add(point.recovery_point_id)
    return copy, waiting


def to_drop(primary: Listing, replica: Listing) -> list[IndexEntry]:
    """Replica points the primary no longer has and nothing in the replica still needs."""
    if not primary.entries:
        return []  # an empty primary catalog is a lost primary, not a retention decision
    in_primary = {p.recovery_point_id for p in primary.entries}
    by_id = {p.recovery_point_id: p for p in replica.entries}
    verified = replica.verified_entries()
    keep: set[str] = set()
    if verified:
        keep.update(chain_ids(verified[-1], by_id))
    for point in replica.entries:
        if point.recovery_point_id in in_primary:
            keep.update(chain_ids(point, by_id))
    newest = verified[-1].captured_at if verified else None
    return [
        p
        for p in replica.entries
        if p.recovery_point_id not in keep and newest is not None and p.captured_at < newest
    ]


def plan_dataset(primary: Listing, replica: Listing) -> DatasetPlan:
    copy, waiting = to_copy(primary, replica)
    return DatasetPlan(copy=copy, waiting=waiting, drop=to_drop(primary, replica))
