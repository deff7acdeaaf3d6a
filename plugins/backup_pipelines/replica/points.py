"""One recovery point into the DR region: its objects, checked there, then its DR manifest, last.

The DR manifest is the primary's with the replica's location, storage class and per-object
SHA-256 (S3's own checksum of the replica), and the replica's own verification (``replica_sha256``
and friends; its ``replica`` record names the primary location it came from). The primary's
manifest then gets the same ``replica`` record. It is written only
when every object is checked in the replica, so a manifest in the DR catalog always means "present
and checked" and an interrupted copy leaves no point there. A ClickHouse increment's ``.backup``
is copied with its base URL naming the replica's base (``core.replica.rewrite_base_url``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backup_pipelines.core import clock
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.core.replica import ReplicaRecord, replica_location, rewrite_base_url
from backup_pipelines.core.s3 import S3Object, split_s3_url
from backup_pipelines.replica.transfer import RegionTransfer, ReplicaObject

if TYPE_CHECKING:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import BackupConfig

log = logging.getLogger(__name__)

BACKUP_FILE = ".backup"
SUMMARY_FIELDS = ("objects_file", "object_count", "total_bytes")
#: How ClickHouse names a location in its ``S3()`` URLs, per region (``ClickHouseEngine.http_url``).
UrlOf = Callable[[str], str]


@dataclass(frozen=True)
class PointOutcome:
    """What happened to one point: ``replicated``, ``present`` (nothing left to copy) or ``thawing``."""

    label: str
    state: str
    objects_copied: int
    bytes_copied: int
    detail: str = ""


class PointReplicator:
    """Copies one point's objects with ``transfer``, writes its DR manifest to ``dr_catalog`` and
    records the replica in ``primary_catalog``."""

    def __init__(
        self,
        cfg: BackupConfig,
        transfer: RegionTransfer,
        primary_catalog: Catalog,
        dr_catalog: Catalog,
        *,
        primary_url: UrlOf,
        dr_url: UrlOf,
        concurrency: int = 8,
    ) -> None:
        self.cfg = cfg
        self.transfer = transfer
        self.primary_catalog = primary_catalog
        self.dr_catalog = dr_catalog
        self.primary_url = primary_url
        self.dr_url = dr_url
        self.concurrency = concurrency

    def replicate(self, point: Manifest, base: Manifest | None) -> PointOutcome:
        """Copy and check every object of ``point``; write its DR manifest when all are in, then
        record the replica (location, checks) in the primary's manifest."""
        bucket, _ = split_s3_url(point.location)
        dest_bucket, _ = split_s3_url(replica_location(self.cfg, point.location))
        entries = list(point.objects)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="replica") as pool:
            results = list(pool.map(lambda e: self._one(point, base, bucket, dest_bucket, e), entries))
        for waiting in ("thawing", "pending"):
            keys = [r.key for r in results if r.outcome == waiting]
            if keys:
                detail = f"{len(keys)} object(s) {waiting}, e.g. {keys[0]}"
                log.info("%s: not in the replica yet: %s", point.label, detail)
                return PointOutcome(point.label, waiting, 0, 0, detail)
        copied = [r for r in results if r.outcome == "copied"]
        replica = self.dr_manifest(point, results)
        self.dr_catalog.write(replica)
        self.primary_catalog.write(point.model_copy(update={"replica": replica.replica}))
        log.info(
            "%s: replica checked (%d objects, %d copied now, %d bytes) at %s",
            point.label,
            len(results),
            len(copied),
            sum(r.size for r in copied),
            replica_location(self.cfg, point.location),
        )
        return PointOutcome(
            point.label, "replicated" if copied else "present", len(copied), sum(r.size for r in copied)
        )

    def _one(
        self, point: Manifest, base: Manifest | None, bucket: str, dest_bucket: str, entry: ObjectEntry
    ) -> ReplicaObject:
        source = S3Object(
            bucket=bucket,
            key=entry.key,
            size=entry.size,
            etag=f'"{entry.etag}"' if entry.etag and not entry.etag.startswith('"') else (entry.etag or ""),
            storage_class=entry.storage_class or point.storage_class,
        )
        body = self._rewritten_backup_file(point, base, source)
        return self.transfer.transfer(source, dest_bucket, expected_sha256=entry.sha256, body=body)

    def _rewritten_backup_file(
        self, point: Manifest, base: Manifest | None, source: S3Object
    ) -> bytes | None:
        """A ClickHouse increment's ``.backup`` naming the replica's base; None for any other object."""
        if point.kind != DatasetKind.CLICKHOUSE_SNAPSHOT or base is None:
            return None
        _, prefix = split_s3_url(point.location)
        if source.key != prefix + BACKUP_FILE:
            return None
        found = self.transfer.primary.get_bytes(source.bucket, source.key)
        if found is None:
            return None  # the transfer reports it missing
        return rewrite_base_url(
            found[0], self.primary_url(base.location), self.dr_url(replica_location(self.cfg, base.location))
        )

    def dr_manifest(self, point: Manifest, results: list[ReplicaObject]) -> Manifest:
        """The DR catalog's manifest of ``point``: the replica's location, objects and checks."""
        replica = self.cfg.storage.replica
        assert replica is not None
        by_key = {r.key: r for r in results}
        location = replica_location(self.cfg, point.location)
        objects = [
            entry.model_copy(
                update={
                    "size": by_key[entry.key].size,
                    "sha256": by_key[entry.key].sha256,
                    "storage_class": by_key[entry.key].storage_class,
                    "etag": entry.etag if by_key[entry.key].size == entry.size else None,
                }
            )
            for entry in point.objects
        ]
        rewritten = [r.key for r in results if r.size != _size(point, r.key)]
        now = clock.utcnow()
        checks = ["replica_objects_present", "replica_sha256"] + (["base_url_rewritten"] if rewritten else [])
        record = ReplicaRecord(
            region=replica.region,
            location=location,
            primary_location=point.location,
            mode=replica.mode,
            verified_at=now,
            checks=checks,
            objects=len(objects),
            bytes=sum(o.size for o in objects),
            rewritten=rewritten,
        )
        update = {
            "location": location,
            "storage_class": replica.storage_class_for(point.storage_class),
            "objects": objects,
            "verification": Verification(
                state="verified",
                verified_at=now,
                checks=checks,
                detail=f"replica in {replica.region} of {point.location} (primary verification: "
                f"{point.verification.state} at {point.verification.verified_at})",
            ),
            "replica": record,
        }
        # a stored summary's object-list file belongs to the primary's catalog: the DR one writes its own
        update.update({k: None for k in SUMMARY_FIELDS if k in Manifest.model_fields})
        return point.model_copy(update=update)


def _size(point: Manifest, key: str) -> int:
    return next((o.size for o in point.objects if o.key == key), -1)
