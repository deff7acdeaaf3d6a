"""The hourly snapshot of one dataset: which slot, full or incremental, on which base; the manifest.

``SnapshotService.prepare`` decides and starts the backup (or re-attaches to one still running, or
finds the slot already captured); the operator waits (in-process for chDB, deferred otherwise);
``SnapshotService.finish`` describes the finished backup and writes its manifest, last.

Base choice: only a point whose whole chain is verified (its *effective* state, ``core.chains``)
and still in S3 (``core.presence``) can be a base; the newest such one is chosen, and a chain whose
full backup is ``full_every`` old or older gets a fresh full.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from backup_pipelines import __version__
from backup_pipelines.clickhouse.backup_files import (
    BackupContents,
    BackupStatus,
    backup_location,
    recovery_point_id,
)
from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.parts import PartState, capture, masked_visible_rows, part_states
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, ClickHouseDataset
from backup_pipelines.core.errors import ConfigError, UnsafeOperationError
from backup_pipelines.core.ingest import capture_ingest_offsets
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Listing, Manifest, ObjectEntry
from backup_pipelines.core.parallel import concurrently
from backup_pipelines.core.presence import CHECK_PRESENCE, Presence, describe_missing
from backup_pipelines.core.s3 import split_s3_url

log = logging.getLogger(__name__)

KIND = DatasetKind.CLICKHOUSE_SNAPSHOT


class SnapshotPlan(BaseModel):
    """What one snapshot task does (XCom across a deferral: plain JSON, never a secret)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    database: str
    tables: list[str]
    rp_id: str
    location: str
    base_id: str | None
    chain_locations: list[str]
    captured_at: datetime
    interval_start: datetime | None
    interval_end: datetime
    backup_id: str = ""
    # Rows count() showed per masked part just before the backup started (a part merged away by
    # the time the manifest is written is still known): table -> part -> visible rows.
    visible_before: dict[str, dict[str, int]] = {}
    # Ingest groups' committed offsets read just before the BACKUP started (core.ingest).
    ingest: dict[str, Any] = {}


class SnapshotSummary(BaseModel):
    """What a snapshot or verify task returns (XCom)."""

    action: Literal["captured", "verified", "noop"]
    dataset: str
    recovery_point_id: str
    base: str | None
    captured_at: datetime
    row_counts: dict[str, int]
    stored_bytes: int
    verification: str

    @classmethod
    def of(cls, manifest: Manifest, action: Literal["captured", "verified", "noop"]) -> SnapshotSummary:
        return cls(
            action=action,
            dataset=manifest.dataset,
            recovery_point_id=manifest.recovery_point_id,
            base=manifest.base,
            captured_at=manifest.captured_at,
            row_counts=manifest.row_counts,
            stored_bytes=manifest.size_bytes,
            verification=manifest.verification.state,
        )


def choose_base(
    listing: Listing, *, exclude: str | None = None, now: datetime, full_every: timedelta
) -> Manifest | None:
    """The base of the next increment, or None for a full backup.

    Only a point whose *effective* state is verified (it and its whole chain verified, see
    ``core.chains``) can be a base; the newest such one is chosen, and a chain whose full backup is
    ``full_every`` old or older gets a fresh full. One pass over the points (chains resolved once).
    """
    states = listing.states()
    for point in sorted(listing.entries, key=lambda p: p.captured_at, reverse=True):  # the index
        state = states[point.recovery_point_id]
        if point.recovery_point_id == exclude or point.captured_at > now or not state.usable:
            continue
        root = listing.entry(state.root or "")
        assert root is not None
        if now - root.captured_at >= full_every:
            return None
        return listing.manifest(point.recovery_point_id)  # the one manifest read
    return None


def find_dataset(cfg: BackupConfig, name: str) -> ClickHouseDataset:
    for dataset in cfg.clickhouse_snapshots.datasets:
        if dataset.name == name:
            return dataset
    known = ", ".join(d.name for d in cfg.clickhouse_snapshots.datasets) or "none"
    raise ConfigError(f"dataset {name!r} is not in clickhouse_snapshots.datasets (configured: {known})")


class SnapshotService:
    """Snapshots of the configured datasets: plan and start, then describe and catalog."""

    def __init__(self, cfg: BackupConfig, engine: ClickHouseEngine, catalog: Catalog) -> None:
        self.cfg = cfg
        self.section = cfg.clickhouse_snapshots
        self.engine = engine
        self.store = BackupStore(engine.s3)
        self.catalog = catalog

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> SnapshotService:
        engine = ClickHouseEngine.from_config(cfg)
        return cls(cfg, engine, Catalog.from_config(cfg, s3=engine.s3))

    def prepare(
        self, dataset_name: str, start: datetime | None, end: datetime
    ) -> SnapshotPlan | SnapshotSummary:
        """Start (or re-attach to) the backup of the slot ending at ``end``; a summary when done."""
        dataset = find_dataset(self.cfg, dataset_name)
        bucket = self.cfg.storage.backup_bucket
        self.engine.s3.check_bucket(bucket, role="backup bucket")
        rp_id = recovery_point_id(end)
        location = backup_location(bucket, self.section.prefix, dataset.name, rp_id)
        existing, listing = concurrently(
            lambda: self.catalog.get(KIND, dataset.name, rp_id),
            lambda: self.catalog.list_points(KIND, dataset.name),
        )
        if existing is not None and existing.verification.state != "failed":
            when = f"{existing.captured_at.isoformat()} ({existing.verification.state})"
            log.info("Slot %s of %s already captured at %s: nothing to do", rp_id, dataset.name, when)
            return SnapshotSummary.of(existing, "noop")
        if existing is not None:
            location = self._retake_location(existing, listing)
        reattach = None if self.engine.is_embedded else self.engine.running_backup(dataset.name, rp_id)
        if reattach is None:
            leftovers = self.store.delete_location(location)
            if leftovers:
                log.info("Removed %d objects of an earlier crashed attempt at %s", leftovers, location)
        now = clock.utcnow()
        base, chain = self.base_for(listing, exclude=rp_id, now=now)
        tables = self.engine.resolve_tables(dataset.database, dataset.tables)
        plan = SnapshotPlan(
            dataset=dataset.name,
            database=dataset.database,
            tables=tables,
            rp_id=rp_id,
            location=location,
            base_id=base.recovery_point_id if base else None,
            chain_locations=[m.location for m in chain],
            captured_at=now,
            interval_start=start,
            interval_end=end,
        )
        if end < now - timedelta(hours=2):
            log.info("Backfill of slot %s: the backup captures the data as of now (%s)", rp_id, now)
        if reattach:
            log.info("Re-attaching to backup %s of this slot, still running on the server", reattach)
            plan.backup_id = reattach
        else:
            plan.visible_before = masked_visible_rows(self.engine, dataset.database, tables)
            plan.ingest = capture_ingest_offsets(self.cfg, dataset)
            plan.backup_id = self.engine.start_backup(
                dataset=dataset.name,
                rp_id=rp_id,
                database=dataset.database,
                tables=tables,
                location=location,
                base_location=base.location if base else None,
            )
        return plan

    def base_for(
        self, listing: Listing, *, exclude: str, now: datetime
    ) -> tuple[Manifest | None, list[Manifest]]:
        """The base of the next backup and its chain; (None, []) for a full backup.

        The chosen base's chain is checked in S3 first (one listing across its folders): a missing, resized
        or replaced object fails the member that holds it (and every point built on it), and the
        next choice is made without that chain, down to a full backup.
        """
        while True:
            base = choose_base(listing, exclude=exclude, now=now, full_every=self.section.full_every)
            if base is None:
                return None, []
            chain = self.catalog.chain(base, listing=listing)
            missing = Presence(self.engine.s3).missing(chain)
            if not missing:
                return base, chain
            broken = listing.manifest(missing[0].recovery_point_id)
            log.warning(
                "Base chain of %s is broken: %s; that chain is failed and not used as a base",
                base.recovery_point_id,
                "; ".join(m.describe() for m in missing[:5]),
            )
            self.catalog.mark_verification(
                broken,
                state="failed",
                checks=[CHECK_PRESENCE],
                detail=describe_missing(missing),
                listing=listing,
            )
            listing = self.catalog.list_points(KIND, listing.points[0].dataset)

    def wait(self, plan: SnapshotPlan) -> BackupStatus:
        """Wait for the backup in this process (chDB, or a task that does not defer)."""
        return self.engine.wait(
            plan.backup_id,
            poll_interval=self.section.poll_interval.total_seconds(),
            timeout=self.section.backup_timeout.total_seconds(),
        )

    def finish(self, plan: SnapshotPlan, status: BackupStatus) -> SnapshotSummary:
        """Describe the finished backup and write its manifest: the recovery point exists from here on."""
        base, stored, states = concurrently(  # S3 and system.parts at once: they do not depend
            lambda: self.catalog.read(KIND, plan.dataset, plan.base_id) if plan.base_id else None,
            lambda: self.stored(plan.location),
            lambda: part_states(self.engine, plan.database, plan.tables),
        )
        manifest = self.describe(plan, status, base, stored=stored, states=states)
        self.catalog.write(manifest)
        log.info(
            "Captured %s %s of %s: %d rows in %d tables, %d bytes stored (%s)",
            manifest.details["backup_type"],
            plan.rp_id,
            plan.dataset,
            sum(manifest.row_counts.values()),
            len(manifest.row_counts),
            manifest.size_bytes,
            f"base {plan.base_id}" if plan.base_id else "no base",
        )
        return SnapshotSummary.of(manifest, "captured")

    def stored(self, location: str) -> tuple[BackupContents, list[ObjectEntry]]:
        """A finished backup's ``.backup`` listing and its objects in S3 (read at once)."""
        contents, objects = concurrently(
            lambda: self.store.read_contents(location), lambda: self.store.list_objects(location)
        )
        return contents, objects

    def describe(
        self,
        plan: SnapshotPlan,
        status: BackupStatus,
        base: Manifest | None,
        *,
        stored: tuple[BackupContents, list[ObjectEntry]] | None = None,
        states: Mapping[tuple[str, str], PartState] | None = None,
    ) -> Manifest:
        """The manifest of a finished backup: tables, parts, rows, sizes, base and versions.
        ``states``: ``system.parts`` of the plan's tables, read after the backup ended; the tables
        the backup holds beyond them (all, without ``states``) are read here."""
        contents, objects = stored or self.stored(plan.location)
        checksums = {f.name: f.checksum for f in contents.files}
        _bucket, prefix = split_s3_url(plan.location)
        for obj in objects:
            obj.checksum = checksums.get(obj.key[len(prefix) :])
        read = set(plan.tables) if states is not None else set()
        unread = {table for table, _ in contents.part_count_files()} - read  # e.g. a re-attached backup's
        states = {**(states or {}), **part_states(self.engine, plan.database, unread)}
        known = {key: state.rows for key, state in states.items()}
        row_counts, parts = self.store.rows_per_table(contents, known, [*plan.chain_locations, plan.location])
        rows = capture(
            self.engine, plan.database, parts, row_counts, states=states, seen_visible=plan.visible_before
        )
        return Manifest(
            kind=KIND,
            dataset=plan.dataset,
            recovery_point_id=plan.rp_id,
            interval_start=plan.interval_start,
            interval_end=plan.interval_end,
            captured_at=plan.captured_at,
            location=plan.location,
            storage_class="STANDARD",
            objects=objects,
            row_counts=row_counts,
            base=base.recovery_point_id if base else None,
            software={"clickhouse": self.engine.server_version(), "backup_pipelines": __version__},
            producer={"dag_id": "clickhouse_hourly_snapshot"},
            details={
                "database": plan.database,
                "tables": contents.tables(),
                "parts": parts,
                **rows.details(),
                "backup_id": status.id,
                "backup_uuid": contents.uuid,
                "backup_type": "incremental" if base else "full",
                "base_location": base.location if base else None,
                "files": len(contents.files),
                "logical_bytes": sum(f.size for f in contents.files),
                "new_data_bytes": sum(f.size - (f.base_size if f.use_base else 0) for f in contents.files),
                "stored_bytes": sum(o.size for o in objects),
                "on_cluster": self.engine.on_cluster,
                **plan.ingest,
            },
        )

    def _retake_location(self, failed: Manifest, listing: Listing) -> str:
        """Where to capture a slot again whose point failed verification.

        Never delete the failed copy here: it may still hold data a disaster would want, and
        increments may point at it. The retake goes to a new folder; the failed copy becomes an
        orphan that only retention sweeps (after orphan_grace, once the slot is captured again).
        """
        rp_id = failed.recovery_point_id
        dependents = sorted(p.recovery_point_id for p in listing.points if p.base == rp_id)
        if dependents:
            raise UnsafeOperationError(
                f"slot {rp_id} of {failed.dataset} failed verification ({failed.verification.detail}) "
                f"but recovery points {', '.join(dependents)} are increments on it; it is kept as it "
                "is, and the next full backup starts a new chain"
            )
        location = backup_location(
            self.cfg.storage.backup_bucket,
            self.section.prefix,
            failed.dataset,
            f"{rp_id}.retake-{clock.utcnow():%Y%m%dT%H%M%S}",
        )
        log.warning(
            "Slot %s failed verification before (%s); taking it again at %s; the failed copy at %s "
            "is kept for retention to sweep",
            rp_id,
            failed.verification.detail,
            location,
            failed.location,
        )
        return location
