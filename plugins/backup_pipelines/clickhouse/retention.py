"""Chain-aware retention of ClickHouse snapshots: pure planning functions and the service that applies them.

Rules (docs/architecture.md, "The catalog"):

- a point older than ``retention_days`` is removed only when no kept point depends on it (an
  increment keeps its whole chain) and a newer *verified* kept point covers it;
- the newest ``min_verified`` verified chains are always kept, whatever their age;
- folders of crashed runs (objects with no manifest) older than ``orphan_grace`` are removed;
- a point S3 Object Lock still protects is reported and left alone; retention carries on;
- ``dry_run`` lists what would go and deletes nothing.

Deletion order: increments before their bases, and for one point the manifest before its data,
so a crash mid-way leaves only manifest-less objects, which the orphan sweep removes later; the
reverse order could leave a manifest that promises data which is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.core.chains import resolve
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.regions import held_for_dr

if TYPE_CHECKING:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.index import IndexEntry
    from backup_pipelines.core.manifest import Listing, Manifest

    Point = Manifest | IndexEntry  # a manifest, or its catalog index entry

KIND = DatasetKind.CLICKHOUSE_SNAPSHOT
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    recovery_point_id: str
    action: Literal["keep", "delete"]
    reason: str


def ancestors(point_id: str, by_id: dict[str, Point]) -> list[str]:
    """Ids the point depends on, nearest base first (stops at a missing base or a loop)."""
    out: list[str] = []
    current = by_id.get(point_id)
    while current is not None and current.base and current.base not in out and current.base != point_id:
        out.append(current.base)
        current = by_id.get(current.base)
    return out


def plan_retention(
    points: Sequence[Point], *, now: datetime, retention_days: int, min_verified: int
) -> list[Decision]:
    """Keep/delete for every point; deletions come out newest first (increments before bases)."""
    by_id: dict[str, Point] = {p.recovery_point_id: p for p in points}
    states = resolve(points)  # effective: a point counts only when its whole chain is verified
    cutoff = now - timedelta(days=retention_days)
    keep: dict[str, str] = {}

    def _keep_with_chain(point_id: str, reason: str) -> None:
        keep.setdefault(point_id, reason)
        for base_id in ancestors(point_id, by_id):
            keep.setdefault(base_id, f"base of kept {point_id}")

    for point in points:
        if point.captured_at >= cutoff:
            _keep_with_chain(point.recovery_point_id, f"younger than {retention_days} days")
    # The newest min_verified intact verified chains, whatever their age.
    newest_per_root: dict[str, Point] = {}
    for point in sorted(points, key=lambda p: p.captured_at, reverse=True):
        state = states[point.recovery_point_id]
        if state.usable and state.root is not None:
            newest_per_root.setdefault(state.root, point)
    for point in list(newest_per_root.values())[:min_verified]:
        _keep_with_chain(point.recovery_point_id, f"one of the newest {min_verified} verified chains")

    kept_verified = [by_id[pid].captured_at for pid in keep if states[pid].usable]
    decisions = []
    for point in sorted(points, key=lambda p: (p.captured_at, p.recovery_point_id), reverse=True):
        pid = point.recovery_point_id
        if pid in keep:
            decisions.append(Decision(pid, "keep", keep[pid]))
        elif not any(t > point.captured_at for t in kept_verified):
            decisions.append(Decision(pid, "keep", "no newer verified recovery point covers it"))
        else:
            age_days = (now - point.captured_at).total_seconds() / 86400
            decisions.append(Decision(pid, "delete", f"{age_days:.1f} days old, no kept point depends on it"))
    return decisions


def orphan_folders(
    folders: dict[str, datetime], manifest_locations: set[str], *, now: datetime, grace: timedelta
) -> list[str]:
    """Folders with no manifest whose newest object is older than ``grace`` (a crashed run's garbage)."""
    return sorted(
        folder
        for folder, newest in folders.items()
        if folder not in manifest_locations and newest < now - grace
    )


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "kept": self.kept,
            "orphans": self.orphans,
            "locked": self.locked,
        }


class RetentionService:
    """Carries out retention for every configured dataset (or only says what it would do)."""

    def __init__(
        self, cfg: BackupConfig, catalog: Catalog, store: BackupStore, *, now: datetime, dry_run: bool
    ) -> None:
        self.cfg = cfg
        self.section = cfg.clickhouse_snapshots
        self.bucket = cfg.storage.backup_bucket
        self.catalog = catalog
        self.store = store
        self.now = now
        self.report = RetentionReport(dry_run=dry_run)
        self.verb = "would delete" if dry_run else "deleting"
        self.lock = store.s3.object_lock_enabled(self.bucket)

    def apply(self) -> RetentionReport:
        for dataset in self.section.datasets:
            listing = self.catalog.list_points(KIND, dataset.name)
            if listing.invalid:
                log.warning(
                    "%s: %d unusable manifest(s); their folders are kept: %s",
                    dataset.name,
                    len(listing.invalid),
                    ", ".join(i.key for i in listing.invalid),
                )
            self._points(dataset.name, listing)
            self._orphans(dataset.name, listing)
        report = self.report
        log.info(
            "Retention%s: %d point(s) %s, %d kept, %d orphan folder(s), %d locked",
            " (dry run)" if report.dry_run else "",
            len(report.deleted),
            "to delete" if report.dry_run else "deleted",
            len(report.kept),
            len(report.orphans),
            len(report.locked),
        )
        return report

    def _points(self, dataset: str, listing: Listing) -> None:
        decisions = plan_retention(
            listing.entries,  # the index: only the manifests of points to delete are read
            now=self.now,
            retention_days=self.section.retention_days,
            min_verified=self.section.min_verified,
        )
        held = held_for_dr(self.cfg, KIND, dataset, listing)  # not in the DR region yet: kept
        for decision in decisions:
            label = f"{dataset}/{decision.recovery_point_id}"
            if decision.action == "keep":
                self.report.kept.append(label)
                continue
            if decision.recovery_point_id in held:
                self.report.kept.append(label)
                log.warning("%s kept: the DR region has not received it yet", label)
                continue
            manifest = listing.manifest(decision.recovery_point_id)
            locked = self.store.locked_objects(manifest.location, now=self.now) if self.lock else []
            if locked:
                self.report.locked.append(
                    f"{label}: {len(locked)} object(s) under Object Lock, e.g. {locked[0]}"
                )
                log.warning("%s is under S3 Object Lock; kept for now: %s", label, locked[0])
                continue
            log.info("%s %s (%s)", self.verb, label, decision.reason)
            self.report.deleted.append(label)
            if not self.report.dry_run:
                self.catalog.delete(manifest)
                self.store.delete_location(manifest.location)

    def _orphans(self, dataset: str, listing: Listing) -> None:
        """Folders no manifest names (valid or not), older than the grace period."""
        base = f"s3://{self.bucket}/{self.section.prefix}{dataset}/"
        known = {p.location for p in listing.entries}
        known |= {f"{base}{i.key.rsplit('/', 1)[-1].removesuffix('.json')}/" for i in listing.invalid}
        folders = self.store.list_folders(base)
        for folder in orphan_folders(folders, known, now=self.now, grace=self.section.orphan_grace):
            if self.lock and self.store.locked_objects(folder, now=self.now):
                self.report.locked.append(f"orphan {folder}: under Object Lock")
                continue
            log.info(
                "%s orphaned folder %s (no manifest, older than %s)",
                self.verb,
                folder,
                self.section.orphan_grace,
            )
            self.report.orphans.append(folder)
            if not self.report.dry_run:
                self.store.delete_location(folder)


def apply_retention(
    cfg: BackupConfig, catalog: Catalog, store: BackupStore, *, now: datetime, dry_run: bool
) -> RetentionReport:
    """Plan and (unless ``dry_run``) carry out retention for every configured dataset."""
    return RetentionService(cfg, catalog, store, now=now, dry_run=dry_run).apply()
