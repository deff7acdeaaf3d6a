"""The catalog: one JSON manifest per recovery point, the single record of what can be restored.

Rules (docs/architecture.md, "The catalog"):

- A manifest is written *last*, after the data is complete: a recovery point without a manifest
  does not exist, so a crash mid-upload leaves only garbage for retention to sweep.
- Manifests are always STANDARD storage class, so the catalog is readable without a thaw.
- RPO is measured from the newest point whose *effective* state is verified (``core.chains``).
- A corrupt or partial manifest is reported with its key and reason and never used.
- Every write and state change also updates the dataset's index (``core.index``) with a
  conditional write; the hot paths read the index and only the manifests they use. Manifests stay
  the truth: a missing index is built from them on first use, and a listing of the dataset's
  folder finds what the index has not seen.

Layout: ``s3://<backup_bucket>/<catalog_prefix><kind>/<dataset>/<recovery_point_id>.json``, the
object lists in ``.../_objects/`` (``core.manifest_store``), the index at ``.../_index.jsonl``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from backup_pipelines.core import clock
from backup_pipelines.core.chain_cache import CHAINED_KINDS, ChainCache
from backup_pipelines.core.chains import chain_of, dependents
from backup_pipelines.core.errors import ManifestError
from backup_pipelines.core.index import DatasetIndex, IndexEntry, IndexHead, compare
from backup_pipelines.core.index_store import IndexStore
from backup_pipelines.core.manifest import (
    InvalidManifest,
    Listing,
    Manifest,
    Verification,
    VerificationStateName,
)
from backup_pipelines.core.manifest_store import ManifestStore, Written
from backup_pipelines.core.parallel import concurrently

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig, Encryption
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)


class Catalog:
    """Reads and writes manifests and indexes in S3; all I/O goes through the given ``BackupS3Hook``."""

    def __init__(
        self,
        s3: BackupS3Hook,
        *,
        bucket: str,
        prefix: str = "catalog/",
        encryption: Encryption | None = None,
    ) -> None:
        from backup_pipelines.core.config import Encryption

        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.encryption = encryption or Encryption()
        self.manifests = ManifestStore(s3, bucket=bucket, prefix=prefix, encryption=self.encryption)
        self.indexes = IndexStore(s3, bucket=bucket, prefix=prefix, encryption=self.encryption)
        self.chains = ChainCache(self.manifests)

    @classmethod
    def from_config(cls, cfg: BackupConfig, *, s3: BackupS3Hook | None = None) -> Catalog:
        """The catalog of a config, on its AWS connection (or on ``s3``, to share one client)."""
        return cls.open(
            aws_conn_id=cfg.connections.aws,
            bucket=cfg.storage.backup_bucket,
            prefix=cfg.storage.catalog_prefix,
            encryption=cfg.storage.encryption,
            s3=s3,
        )

    @classmethod
    def open(
        cls,
        *,
        aws_conn_id: str | None,
        bucket: str,
        prefix: str,
        encryption: Encryption | None = None,
        s3: BackupS3Hook | None = None,
    ) -> Catalog:
        """The catalog from plain values (what triggers and callbacks receive as kwargs)."""
        from backup_pipelines.core.s3 import BackupS3Hook

        return cls(
            s3 or BackupS3Hook(aws_conn_id=aws_conn_id), bucket=bucket, prefix=prefix, encryption=encryption
        )

    def key_for(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return self.manifests.key_for(kind, dataset, recovery_point_id)

    def url_for(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(kind, dataset, recovery_point_id)}"

    # -- writing ---------------------------------------------------------------------------------
    def write(self, manifest: Manifest) -> str:
        """Store the manifest (STANDARD class, encrypted) and its index entry; call this only when
        the data is complete."""
        written = self.manifests.write(manifest)
        self._index([(manifest.summary(objects_file=None), written)])  # as stored: schema 2
        log.info(
            "Catalog: wrote manifest s3://%s/%s (%s, %d objects, %d bytes, verification=%s, revision %d)",
            self.bucket,
            written.key,
            manifest.kind,
            manifest.object_total,
            manifest.size_bytes,
            manifest.verification.state,
            written.revision,
        )
        return written.key

    def _index(self, changes: list[tuple[Manifest, Written]]) -> DatasetIndex:
        kind, dataset = changes[0][0].kind, changes[0][0].dataset
        entries = [IndexEntry.of(m, etag=w.etag, revision=w.revision) for m, w in changes]

        def change(index: DatasetIndex) -> bool:
            return any([index.upsert(entry) for entry in entries])

        return self.indexes.update(kind, dataset, change)

    def mark_verification(
        self,
        manifest: Manifest,
        *,
        state: VerificationStateName,
        checks: list[str],
        detail: str | None = None,
        at: datetime | None = None,
        listing: Listing | None = None,
        bases: list[Manifest] | None = None,
    ) -> Manifest:
        """Record a point's own verification (on the stored manifest, If-Match, retried on conflict).
        A failure also fails every point whose chain goes through it, each with a detail naming
        the broken member (and what broke it). ``bases`` (a verified point's, oldest first): its
        chain file (``core.chain_cache``) is written while the index is updated, the bases at their
        revisions in ``listing`` (read if not given), the point at the one just written."""
        when = at or clock.utcnow()
        verification = Verification(state=state, verified_at=when, checks=checks, detail=detail)
        stored, written = self.manifests.modify(
            manifest.kind,
            manifest.dataset,
            manifest.recovery_point_id,
            lambda m: m.model_copy(update={"verification": verification}),
        )
        updated = manifest.model_copy(update={"verification": stored.verification})
        update_index = partial(self._index, [(stored, written)])
        if bases is None or state != "verified":
            index = update_index()
        else:
            known = listing if listing is not None else self.list_points(manifest.kind, manifest.dataset)
            revisions = {e.recovery_point_id: e.revision for e in known.entries}
            revisions[manifest.recovery_point_id] = written.revision
            index, _ = concurrently(update_index, partial(self.chains.remember, [*bases, updated], revisions))
        if state == "failed":
            self._fail_dependents(updated, index=index, at=when)
        return updated

    def _fail_dependents(self, broken: Manifest, *, index: DatasetIndex, at: datetime) -> list[str]:
        detail = f"chain member {broken.recovery_point_id} failed: {broken.verification.detail}"
        verification = Verification(
            state="failed", verified_at=at, checks=["chain_member_failed"], detail=detail
        )
        changes = []
        for point_id in dependents(index.entries, broken.recovery_point_id):
            entry = index.get(point_id)
            if entry is None or entry.own_state == "failed":
                continue
            changes.append(
                self.manifests.modify(
                    broken.kind,
                    broken.dataset,
                    point_id,
                    lambda m: (
                        m
                        if m.verification.state == "failed"
                        else m.model_copy(update={"verification": verification})
                    ),
                )
            )
        if changes:
            self._index(changes)
            log.warning(
                "Catalog: %s failed; %d dependent point(s) marked failed too: %s",
                broken.label,
                len(changes),
                ", ".join(m.recovery_point_id for m, _ in changes),
            )
        return [m.recovery_point_id for m, _ in changes]

    def delete(self, manifest: Manifest) -> None:
        """Remove a manifest, its object list and its index entry; callers delete the data first so
        a crash never orphans live data."""
        self.delete_point(manifest.kind, manifest.dataset, manifest.recovery_point_id)

    def delete_point(self, kind: str, dataset: str, recovery_point_id: str) -> None:
        self.manifests.delete(kind, dataset, recovery_point_id)
        if kind in CHAINED_KINDS:  # its chain file, if verify wrote one (a missing key is no error)
            self.s3.client.delete_object(
                Bucket=self.bucket, Key=self.chains.key(kind, dataset, recovery_point_id)
            )
        self.indexes.update(kind, dataset, lambda index: index.remove(recovery_point_id))
        log.info("Catalog: deleted manifest %s", self.url_for(kind, dataset, recovery_point_id))

    # -- reading one point -----------------------------------------------------------------------
    def exists(self, kind: str, dataset: str, recovery_point_id: str) -> bool:
        return self.s3.head(self.bucket, self.key_for(kind, dataset, recovery_point_id)) is not None

    def read(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest:
        """The whole manifest, its objects loaded; ``RecoveryPointNotFoundError`` when there is none."""
        return self.manifests.read(kind, dataset, recovery_point_id)

    def get(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest | None:
        from backup_pipelines.core.errors import RecoveryPointNotFoundError

        try:
            return self.read(kind, dataset, recovery_point_id)
        except RecoveryPointNotFoundError:
            return None

    def datasets(self, kind: str) -> list[str]:
        prefix = f"{self.prefix}{kind}/"
        names = {o.key[len(prefix) :].split("/", 1)[0] for o in self.s3.iter_objects(self.bucket, prefix)}
        return sorted(names)

    # -- the index -------------------------------------------------------------------------------
    def index(self, kind: str, dataset: str, *, fresh: bool = True) -> DatasetIndex:
        """The dataset's index, built from the manifests when missing or unusable. ``fresh`` also
        lists the folder and folds in every manifest the index does not hold as listed."""
        try:
            loaded = self.indexes.load(kind, dataset)
        except ManifestError as exc:
            log.warning("Catalog: %s; rebuilding it from the manifests", exc)
            loaded = None
        if loaded is None:
            return self.indexes.update(kind, dataset, lambda _: False)
        index = loaded[0]
        if not fresh:
            return index
        listed = self.indexes.manifest_keys(kind, dataset)
        stale = self.indexes.stale(index, listed)
        known = {f"{self.indexes.folder(kind, dataset)}{e.recovery_point_id}.json" for e in index.entries}
        if not stale and known | {i.key for i in index.invalid} == set(listed):
            return index
        log.info(
            "Catalog index of %s/%s: %d manifest(s) changed behind it; folding them in",
            kind,
            dataset,
            len(stale),
        )
        read = self.indexes.read_many(stale)
        return self.indexes.update(kind, dataset, lambda i: self.indexes.reconcile(i, listed, read))

    def index_head(self, kind: str, dataset: str) -> IndexHead:
        """The index's head alone (one ranged GET): point count and the newest verified point."""
        try:
            head = self.indexes.read_head(kind, dataset)
        except ManifestError as exc:
            log.warning("Catalog: %s; rebuilding it from the manifests", exc)
            head = None
        return head if head is not None else self.index(kind, dataset, fresh=False).head()

    def rebuild_index(self, kind: str, dataset: str) -> DatasetIndex:
        """Replace the index with one built from the manifests (conditionally, retried)."""
        built = self.indexes.build(kind, dataset)

        def replace(index: DatasetIndex) -> bool:
            index.replace(built)
            return True

        return self.indexes.update(kind, dataset, replace)

    def check_index(self, kind: str, dataset: str) -> list[str]:
        """Every difference between the stored index and the manifests, one line each (none: [])."""
        try:
            loaded = self.indexes.load(kind, dataset)
        except ManifestError as exc:
            return [str(exc)]
        built = self.indexes.build(kind, dataset)
        if loaded is None:
            return (
                [f"no index at {self.indexes.url(kind, dataset)} (it is built on first use)"]
                if built.entries
                else []
            )
        return compare(loaded[0], built)

    # -- reading many points ---------------------------------------------------------------------
    def list_points(self, kind: str, dataset: str, *, fresh: bool = True) -> Listing:
        """Every recovery point of a dataset, oldest first, from its index; bad manifests set aside.

        Decisions read the entries; whole manifests are read only for the points asked for.
        ``fresh=False`` (the Backups page) reads the stored index alone, one GET, without listing
        the manifests: every write updates the index, so it lags only a manifest whose writer died
        before the index update (the next write or fresh read folds it in)."""
        index = self.index(kind, dataset, fresh=fresh)
        return Listing(
            entries=index.entries,
            invalid=[InvalidManifest(key=i.key, reason=i.reason) for i in index.invalid],
            loader=partial(self.manifests.read_many, kind, dataset),
        )

    def recent_points(self, kind: str, dataset: str) -> Listing:
        """The index head's points (one ranged GET): the newest points, the newest verified ones and
        the newest that broke a chain, with the chain states the index resolved; for the RPO
        monitor. Whole manifests are read only when asked for."""
        head = self.index_head(kind, dataset)
        return Listing(
            entries=head.recent,
            loader=partial(self.manifests.read_many, kind, dataset),
            resolved=True,
        )

    def latest_verified_summary(self, kind: str, dataset: str) -> IndexEntry | None:
        """The index entry of the newest point whose effective state is verified: one ranged GET."""
        return self.index_head(kind, dataset).latest_verified

    def latest_verified(
        self, kind: str, dataset: str, *, at_or_before: datetime | None = None
    ) -> Manifest | None:
        """The newest verified recovery point, optionally captured at or before a given time."""
        listing = self.list_points(kind, dataset)
        candidates = [
            e for e in listing.verified_entries() if at_or_before is None or e.captured_at <= at_or_before
        ]
        return listing.manifest(candidates[-1].recovery_point_id) if candidates else None

    def age_of_newest_verified(self, kind: str, dataset: str, *, now: datetime | None = None) -> float | None:
        """Seconds since the newest verified point was captured, or None when there is none."""
        newest = self.latest_verified_summary(kind, dataset)
        if newest is None:
            return None
        return ((now or clock.utcnow()) - newest.captured_at).total_seconds()

    def chain(self, manifest: Manifest, *, listing: Listing | None = None) -> list[Manifest]:
        """The recovery points needed to restore ``manifest``: its full base first, itself last
        (``core.chains.chain_of``): the base's chain file if it still holds, else the manifests.

        Raises ``BrokenChainError`` naming the broken member when a base is missing, failed, or loops.
        """
        listing = listing or self.list_points(manifest.kind, manifest.dataset)
        return chain_of(manifest, listing, cached=self.chains.load(manifest, listing))
