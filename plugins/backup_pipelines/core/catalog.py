"""The catalog: one JSON manifest per recovery point, the single record of what can be restored.

Rules (docs/architecture.md, "The catalog"):

- A manifest is written *last*, after the data is complete: a recovery point without a manifest
  does not exist, so a crash mid-upload leaves only garbage for retention to sweep.
- Manifests are always STANDARD storage class, so the catalog is readable without a thaw.
- RPO is measured from the newest *verified* recovery point.
- A corrupt or partial manifest is reported with its key and reason and never used.

Layout: ``s3://<backup_bucket>/<catalog_prefix><kind>/<dataset>/<recovery_point_id>.json``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from backup_pipelines.core import clock
from backup_pipelines.core.chains import dependents
from backup_pipelines.core.errors import BrokenChainError, ManifestError, RecoveryPointNotFoundError
from backup_pipelines.core.manifest import (
    MANIFEST_STORAGE_CLASS,
    InvalidManifest,
    Listing,
    Manifest,
    Verification,
    VerificationStateName,
)

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig, Encryption
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)


class Catalog:
    """Reads and writes manifests in S3; all I/O goes through the given ``BackupS3Hook``."""

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
        return f"{self.prefix}{kind}/{dataset}/{recovery_point_id}.json"

    def url_for(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(kind, dataset, recovery_point_id)}"

    def write(self, manifest: Manifest) -> str:
        """Store the manifest (STANDARD class, encrypted); call this only when the data is complete."""
        key = self.key_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        self.s3.put_encrypted(
            self.bucket,
            key,
            manifest.to_json(),
            encryption=self.encryption,
            storage_class=MANIFEST_STORAGE_CLASS,
            content_type="application/json",
        )
        log.info(
            "Catalog: wrote manifest s3://%s/%s (%s, %d objects, %d bytes, verification=%s)",
            self.bucket,
            key,
            manifest.kind,
            len(manifest.objects),
            manifest.size_bytes,
            manifest.verification.state,
        )
        return key

    def exists(self, kind: str, dataset: str, recovery_point_id: str) -> bool:
        return self.s3.head(self.bucket, self.key_for(kind, dataset, recovery_point_id)) is not None

    def read(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest:
        key = self.key_for(kind, dataset, recovery_point_id)
        found = self.s3.get_bytes(self.bucket, key)
        if found is None:
            raise RecoveryPointNotFoundError(
                f"no recovery point {recovery_point_id!r} for {kind} dataset {dataset!r} "
                f"(s3://{self.bucket}/{key} does not exist)"
            )
        return Manifest.from_json(found[0], f"s3://{self.bucket}/{key}")

    def get(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest | None:
        try:
            return self.read(kind, dataset, recovery_point_id)
        except RecoveryPointNotFoundError:
            return None

    def datasets(self, kind: str) -> list[str]:
        prefix = f"{self.prefix}{kind}/"
        names = {o.key[len(prefix) :].split("/", 1)[0] for o in self.s3.iter_objects(self.bucket, prefix)}
        return sorted(names)

    def list_points(self, kind: str, dataset: str) -> Listing:
        """Every recovery point of a dataset, oldest first; bad manifests are logged and set aside."""
        listing = Listing()
        for obj in self.s3.iter_objects(self.bucket, f"{self.prefix}{kind}/{dataset}/"):
            key = obj.key
            if not key.endswith(".json"):
                continue
            source = f"s3://{self.bucket}/{key}"
            try:
                found = self.s3.get_bytes(self.bucket, key)
                if found is None:  # deleted between the listing and the read
                    continue
                manifest = Manifest.from_json(found[0], source)
                if (manifest.kind, manifest.dataset) != (kind, dataset) or key != self.key_for(
                    kind, dataset, manifest.recovery_point_id
                ):
                    raise ManifestError(
                        f"manifest {source} says it is {manifest.kind}/{manifest.dataset}/"
                        f"{manifest.recovery_point_id}, which does not match its key"
                    )
            except ManifestError as exc:
                log.warning("Catalog: skipping unusable manifest: %s", exc)
                listing.invalid.append(InvalidManifest(key=key, reason=str(exc)))
                continue
            listing.points.append(manifest)
        listing.points.sort(key=lambda m: (m.captured_at, m.recovery_point_id))
        return listing

    def latest_verified(
        self, kind: str, dataset: str, *, at_or_before: datetime | None = None
    ) -> Manifest | None:
        """The newest verified recovery point, optionally captured at or before a given time."""
        candidates = [
            p
            for p in self.list_points(kind, dataset).verified()
            if at_or_before is None or p.captured_at <= at_or_before
        ]
        return candidates[-1] if candidates else None

    def age_of_newest_verified(self, kind: str, dataset: str, *, now: datetime | None = None) -> float | None:
        """Seconds since the newest verified point was captured, or None when there is none."""
        newest = self.latest_verified(kind, dataset)
        if newest is None:
            return None
        return ((now or clock.utcnow()) - newest.captured_at).total_seconds()

    def chain(self, manifest: Manifest, *, listing: Listing | None = None) -> list[Manifest]:
        """The recovery points needed to restore ``manifest``: its full base first, itself last.

        Raises ``BrokenChainError`` naming the broken member when a base is missing, failed, or loops.
        """
        listing = listing or self.list_points(manifest.kind, manifest.dataset)
        known = listing.by_id()
        chain = [manifest]
        seen = {manifest.recovery_point_id}
        while chain[0].base:
            base_id = chain[0].base
            if base_id in seen:
                raise BrokenChainError(f"recovery point {manifest.recovery_point_id}: base loop at {base_id}")
            base = known.get(base_id)
            if base is None:
                raise BrokenChainError(
                    f"recovery point {chain[0].recovery_point_id} of {manifest.kind} dataset "
                    f"{manifest.dataset!r} depends on base {base_id}, whose manifest is missing or unusable"
                )
            if base.verification.state == "failed":
                raise BrokenChainError(
                    f"recovery point {chain[0].recovery_point_id} depends on base {base_id}, "
                    f"which failed verification: {base.verification.detail}"
                )
            seen.add(base_id)
            chain.insert(0, base)
        return chain

    def mark_verification(
        self,
        manifest: Manifest,
        *,
        state: VerificationStateName,
        checks: list[str],
        detail: str | None = None,
        at: datetime | None = None,
        listing: Listing | None = None,
    ) -> Manifest:
        """Record a point's own verification. A failure also fails every point whose chain goes
        through it, each with a detail naming the broken member (and what broke it)."""
        when = at or clock.utcnow()
        updated = manifest.model_copy(
            update={"verification": Verification(state=state, verified_at=when, checks=checks, detail=detail)}
        )
        self.write(updated)
        if state == "failed":
            self._fail_dependents(updated, listing=listing, at=when)
        return updated

    def _fail_dependents(self, broken: Manifest, *, listing: Listing | None, at: datetime) -> list[str]:
        listing = listing or self.list_points(broken.kind, broken.dataset)
        by_id = listing.by_id()
        failed = []
        for point_id in dependents(listing.points, broken.recovery_point_id):
            point = by_id[point_id]
            if point.verification.state == "failed":
                continue
            detail = f"chain member {broken.recovery_point_id} failed: {broken.verification.detail}"
            self.write(
                point.model_copy(
                    update={
                        "verification": Verification(
                            state="failed", verified_at=at, checks=["chain_member_failed"], detail=detail
                        )
                    }
                )
            )
            failed.append(point_id)
        if failed:
            log.warning(
                "Catalog: %s failed; %d dependent point(s) marked failed too: %s",
                broken.label,
                len(failed),
                ", ".join(failed),
            )
        return failed

    def delete(self, manifest: Manifest) -> None:
        """Remove a manifest; callers delete the data first so a crash never orphans live data."""
        key = self.key_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        self.s3.client.delete_object(Bucket=self.bucket, Key=key)
        log.info("Catalog: deleted manifest s3://%s/%s", self.bucket, key)
