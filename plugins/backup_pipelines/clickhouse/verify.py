"""Verification of a snapshot before it may count: cheap but real checks, and the verify service.

0. every object of the chain (this point and its bases) is in S3 with its recorded size and ETag
   (``core.presence``: one listing across the chain's folders); a broken member is failed with its dependents;
1. ``system.backups`` says the backup was created (when the server still knows it);
2. every file of the ``.backup`` listing is stored, with its size, here or in the base chain (the
   bases' files are found through their manifests' checksums, not by re-reading their listings);
3. row counts recomputed from the listing match the manifest;
4. ``RESTORE ... structure_only`` into a scratch database succeeds for every table of a full, and
   for every table of an increment whose CREATE statement is new or changed; a table whose
   statement is its verified base's byte for byte (same size and checksum in the ``.backup``, the
   ``.backup`` naming that base's folder and UUID) is not restored again, since ClickHouse would
   reopen every base's ``.backup`` for the same bytes (its time would grow with the chain).

A point that passes is marked ``verified`` in the catalog; one that fails is marked ``failed`` and
is never used as a base.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backup_pipelines.clickhouse.backup_files import BackupContents, BackupFile, recovery_point_id
from backup_pipelines.clickhouse.backups import BackupStore, ChainIndex, manifest_index
from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.snapshot import KIND, SnapshotSummary, find_dataset
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    BackupFailedError,
    BrokenChainError,
    RecoveryPointNotFoundError,
    VerificationError,
)
from backup_pipelines.core.manifest import Listing, Manifest
from backup_pipelines.core.parallel import concurrently
from backup_pipelines.core.presence import CHECK_PRESENCE, Presence, describe_missing
from backup_pipelines.core.s3 import split_s3_url

log = logging.getLogger(__name__)


@dataclass
class VerificationResult:
    ok: bool
    checks: list[str]
    detail: str | None = None


class SnapshotVerifier:
    """The checks of one backup against its manifest and its chain (no catalog writes)."""

    def __init__(self, engine: ClickHouseEngine, store: BackupStore) -> None:
        self.engine = engine
        self.store = store

    def read_contents(self, manifest: Manifest) -> BackupContents | VerificationError:
        """The point's ``.backup`` listing, or why it cannot be read (a finding, not a crash)."""
        try:
            return self.store.read_contents(manifest.location)
        except VerificationError as exc:
            return exc

    def verify(
        self,
        manifest: Manifest,
        *,
        chain: Sequence[Manifest] = (),
        contents: BackupContents | VerificationError | None = None,
    ) -> VerificationResult:
        """``contents``: the ``.backup`` listing when already read (``read_contents``)."""
        checks: list[str] = []
        backup_id = str(manifest.details.get("backup_id", ""))
        status = self.engine.backup_status(backup_id) if backup_id else None
        if status is not None:
            if not status.succeeded:
                return VerificationResult(False, checks, f"system.backups: {status.status} {status.error}")
            checks.append(f"system.backups: {status.status}")
        else:
            checks.append("system.backups: not known to this server (restarted?); relying on the listing")
        chain_list = list(chain) or [manifest]
        if chain_list[-1].recovery_point_id != manifest.recovery_point_id:
            raise BrokenChainError(f"chain given for {manifest.recovery_point_id} does not end with it")
        contents = contents if contents is not None else self.read_contents(manifest)
        if isinstance(contents, VerificationError):
            return VerificationResult(False, checks, str(contents))
        missing = self.missing_files(manifest, contents, chain_list)
        if missing:
            return VerificationResult(
                False,
                checks,
                f"{len(missing)} file(s) of the listing are not stored: {', '.join(missing[:5])}",
            )
        checks.append(f"listing: {len(contents.files)} files present in the chain of {len(chain_list)}")
        database = str(manifest.details.get("database", ""))
        known = self.engine.part_rows(database, sorted({t for t, _ in contents.part_count_files()}))
        rows, _ = self.store.rows_per_table(
            contents, known, [m.location for m in chain_list], index=manifest_index(chain_list)
        )
        if rows != manifest.row_counts:
            return VerificationResult(
                False, checks, f"row counts {rows} differ from manifest {manifest.row_counts}"
            )
        checks.append(f"row counts from parts: {sum(rows.values())} rows in {len(rows)} tables")
        inherited, problem = self.inherited_structure(contents, chain_list)
        if problem:
            return VerificationResult(False, checks, problem)
        to_restore = [t for t in contents.tables() if t not in inherited]
        problem = self.structure_restores(manifest, database, to_restore) if to_restore else None
        if problem:
            return VerificationResult(False, checks, problem)
        if inherited:
            checks.append(
                f"structure: {len(inherited)} tables' metadata byte for byte that of verified base "
                f"{chain_list[-2].recovery_point_id} (restored by ClickHouse when its chain was verified; "
                "base UUID matches)"
            )
        checks.append(f"RESTORE structure_only: {len(to_restore)} tables")
        return VerificationResult(True, checks)

    def inherited_structure(
        self, contents: BackupContents, chain: Sequence[Manifest]
    ) -> tuple[set[str], str | None]:
        """Tables of an increment whose CREATE statement is the verified base's, byte for byte.

        Their structure-only RESTORE proved nothing new: ClickHouse restored the same bytes when
        the base's chain was verified, and would now open every base's ``.backup`` to read them
        again (its time grows with the chain). Only an increment on a verified base whose
        ``.backup`` names that base (its folder and the UUID recorded when it was taken) qualifies;
        anything else (a full, a base taken before UUIDs were recorded) is restored in full.
        Returns (tables, problem): a problem is a ``.backup`` ClickHouse would refuse to open."""
        if len(chain) < 2 or not all(m.is_verified for m in chain[:-1]):
            return set(), None
        base = chain[-2]
        recorded = base.details.get("backup_uuid")
        if not recorded or not contents.uuid or contents.base_backup_uuid is None:
            return set(), None  # no UUID to match, or nothing read from the base: restore in full
        _bucket, base_prefix = split_s3_url(base.location)
        if contents.base_backup_uuid != recorded or base_prefix not in (contents.base_backup or ""):
            return set(), (
                f"the .backup names base UUID {contents.base_backup_uuid} at "
                f"{_redacted_url(contents.base_backup)}, but its base {base.recovery_point_id} is UUID "
                f"{recorded} at {base.location}: ClickHouse would refuse to open the chain"
            )
        inherited = {
            table for table, item in contents.table_metadata().items() if item.size and not item.stored_here
        }
        return inherited, None

    def structure_restores(self, manifest: Manifest, database: str, tables: list[str]) -> str | None:
        """None when ``RESTORE ... structure_only`` recreates every table, else what went wrong."""
        scratch = f"_bp_verify_{uuid.uuid4().hex[:10]}"
        try:
            self.engine.create_database(scratch)
            restore_id = self.engine.start_restore(
                database=database,
                tables=tables,
                target_database=scratch,
                location=manifest.location,
                structure_only=True,
                on_cluster=False,
            )
            self.engine.wait(restore_id, poll_interval=0.2, timeout=600, what="structure-only restore")
            restored = sorted(self.engine.existing_tables(scratch))
        except BackupFailedError as exc:
            return f"RESTORE structure_only failed: {exc}"
        finally:
            self.engine.drop_database(scratch)
        if restored != sorted(tables):
            return f"structure-only restore gave {restored}, expected {tables}"
        return None

    def missing_files(
        self, manifest: Manifest, contents: BackupContents, chain: Sequence[Manifest]
    ) -> list[str]:
        """Files of the listing whose bytes are in neither this backup's objects nor its base chain."""
        _, prefix = split_s3_url(manifest.location)
        own = {o.key[len(prefix) :]: o.size for o in self.store.list_objects(manifest.location)}
        bases = manifest_index(chain[:-1])
        read_listings = False
        missing = []
        for item in contents.files:
            if item.size == 0:
                continue
            if item.stored_here:
                if (item.data_file or item.name) not in own:
                    missing.append(item.name)
                continue
            if not _in(bases, item) and not read_listings and len(chain) > 1:
                # Not found through the manifests (one without checksums): read the bases' listings.
                bases = {**bases, **self.store.chain_index([m.location for m in chain[:-1]])}
                read_listings = True
            if not _in(bases, item):
                missing.append(item.name)
        return missing


def _redacted_url(base_backup: str | None) -> str:
    """The base's URL as the ``.backup`` names it, without any credentials written beside it."""
    if not base_backup:
        return "no base"
    found = re.search(r"(https?://[^'\"\s,)]+|s3://[^'\"\s,)]+)", base_backup)
    return found.group(1) if found else "an unreadable base"


def _in(index: ChainIndex, item: BackupFile) -> bool:
    return (item.base_size, item.checksum) in index or (item.size, item.checksum) in index


class VerifyService:
    """Verify the slot's point and record the outcome in the catalog."""

    def __init__(self, cfg: BackupConfig, engine: ClickHouseEngine, catalog: Catalog) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.verifier = SnapshotVerifier(engine, BackupStore(engine.s3))

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> VerifyService:
        engine = ClickHouseEngine.from_config(cfg)
        return cls(cfg, engine, Catalog.from_config(cfg, s3=engine.s3))

    def verify_slot(self, dataset_name: str, end: datetime) -> SnapshotSummary:
        dataset = find_dataset(self.cfg, dataset_name)
        rp_id = recovery_point_id(end)
        manifest, listing = concurrently(
            lambda: self.catalog.get(KIND, dataset.name, rp_id),
            lambda: self.catalog.list_points(KIND, dataset.name),
        )
        if manifest is None:
            raise RecoveryPointNotFoundError(
                f"no manifest for slot {rp_id} of {dataset.name}: the snapshot did not complete"
            )
        if manifest.is_verified:
            log.info("Slot %s of %s is already verified: nothing to do", rp_id, dataset.name)
            return SnapshotSummary.of(manifest, "noop")
        chain, contents = concurrently(  # the chain and its presence while the .backup is read
            lambda: self.present_chain(manifest, listing), lambda: self.verifier.read_contents(manifest)
        )
        result = self.verifier.verify(manifest, chain=chain, contents=contents)
        updated = self.catalog.mark_verification(  # a verified chain is cached for the next point's
            manifest,
            state="verified" if result.ok else "failed",
            checks=result.checks,
            detail=result.detail,
            listing=listing,
            bases=chain[:-1],
        )
        for check in result.checks:
            log.info("check passed: %s", check)
        if not result.ok:
            raise VerificationError(
                f"backup {rp_id} of {dataset.name} failed verification: {result.detail}; "
                "it will never be used as a base"
            )
        return SnapshotSummary.of(updated, "verified")

    def present_chain(self, manifest: Manifest, listing: Listing) -> list[Manifest]:
        """The point's chain, every object of it checked in S3 (``check_presence``)."""
        chain = self.catalog.chain(manifest, listing=listing)
        self.check_presence(chain, listing)
        return chain

    def check_presence(self, chain: list[Manifest], listing: Listing) -> None:
        """Every object a restore of the chain reads is in S3 as its manifest records it (one
        listing across the chain's folders); else the member holding the first missing object is failed, with
        every point built on it (this one included), and ``VerificationError`` names the object."""
        missing = Presence(self.verifier.store.s3).missing(chain)
        if not missing:
            objects = sum(len(m.objects) for m in chain)
            log.info("check passed: %d object(s) of a chain of %d present", objects, len(chain))
            return
        broken = next(m for m in chain if m.recovery_point_id == missing[0].recovery_point_id)
        detail = describe_missing(missing)
        self.catalog.mark_verification(
            broken, state="failed", checks=[CHECK_PRESENCE], detail=detail, listing=listing
        )
        point = chain[-1]
        raise VerificationError(
            f"backup {point.recovery_point_id} of {point.dataset} failed verification: chain member "
            f"{broken.recovery_point_id} is broken ({detail}); it and every point built on it are failed"
        )
