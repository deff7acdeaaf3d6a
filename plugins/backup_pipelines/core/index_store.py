"""The catalog index in S3: read, ranged head read, conditional writes retried on conflict, rebuild.

Every change is read-modify-write with ``If-Match`` on the index's ETag (``If-None-Match: *`` when
the index is new): a writer that lost the race gets 412, reads the index again and re-applies its
change, so concurrent writers (a task retry, a drill marking points, retention) lose no update.
An index that is missing, corrupt or of another format is rebuilt from the manifests, which stay
the truth; ``reconcile`` folds in whatever a listing shows changed behind the index's back (a
crash between a manifest write and its index update, a manifest put by hand), by ETag, reading
only those manifests.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from backup_pipelines.core.errors import CatalogIndexError, ManifestError
from backup_pipelines.core.index import (
    HEAD_BYTES,
    INDEX_NAME,
    DatasetIndex,
    IndexEntry,
    IndexHead,
    InvalidEntry,
    parse_head,
)
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.core.s3 import NOT_FOUND_CODES, error_code

if TYPE_CHECKING:
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

#: S3's answers to a conditional write that lost a race (412), or met a concurrent one (409).
CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
REVISION_META = "revision"
ATTEMPTS = 40
READ_THREADS = 16


def _written_at() -> datetime:
    """When an index is written: the real wall clock, never a decision's input (tests move
    ``core.clock``, not this)."""
    return datetime.now(UTC)


def is_conflict(exc: ClientError) -> bool:
    return error_code(exc) in CONFLICT_CODES


def backoff(attempt: int) -> None:
    """Jittered exponential wait before retrying a lost conditional write (at most ~0.5 s)."""
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as read from S3, with the ETag and revision its index entry records."""

    manifest: Manifest
    etag: str
    revision: int

    @property
    def entry(self) -> IndexEntry:
        return IndexEntry.of(self.manifest, etag=self.etag, revision=self.revision)


class IndexStore:
    """The per-dataset index objects of one catalog, through the S3 gateway."""

    def __init__(self, s3: BackupS3Hook, *, bucket: str, prefix: str, encryption: Encryption) -> None:
        self.s3, self.bucket, self.prefix, self.encryption = s3, bucket, prefix, encryption

    def folder(self, kind: str, dataset: str) -> str:
        return f"{self.prefix}{kind}/{dataset}/"

    def key_for(self, kind: str, dataset: str) -> str:
        return self.folder(kind, dataset) + INDEX_NAME

    def url(self, kind: str, dataset: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(kind, dataset)}"

    # -- reading ---------------------------------------------------------------------------------
    def fetch(self, kind: str, dataset: str) -> tuple[bytes, str] | None:
        return self.s3.get_bytes(self.bucket, self.key_for(kind, dataset))

    def load(self, kind: str, dataset: str) -> tuple[DatasetIndex, str] | None:
        """The index and its ETag; None when there is none; ``ManifestError`` when it is unusable."""
        found = self.fetch(kind, dataset)
        if found is None:
            return None
        return DatasetIndex.from_bytes(found[0], self.url(kind, dataset)), found[1]

    def read_head(self, kind: str, dataset: str) -> IndexHead | None:
        """The head line alone, with one ranged GET (a whole GET if the head is longer)."""
        key = self.key_for(kind, dataset)
        try:
            response = self.s3.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}"
            )
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        raw = response["Body"].read()
        if b"\n" not in raw and int(response.get("ContentLength", 0)) >= HEAD_BYTES:
            raw = (self.fetch(kind, dataset) or (b"", ""))[0]
        return parse_head(raw.split(b"\n", 1)[0].decode("utf-8", errors="replace"), self.url(kind, dataset))

    # -- writing ---------------------------------------------------------------------------------
    def save(self, index: DatasetIndex, *, etag: str | None) -> str:
        """Write ``index`` if the stored one still has ``etag`` (or, for None, if there is none).

        Raises ``ClientError`` 412 when another writer got there first."""
        index.updated_at = _written_at()
        return self.s3.put_encrypted(
            self.bucket,
            self.key_for(index.kind, index.dataset),
            index.to_bytes(),
            encryption=self.encryption,
            content_type="application/x-ndjson",
            if_match=etag,
            if_none_match="*" if etag is None else None,
        )

    def update(self, kind: str, dataset: str, change: Callable[[DatasetIndex], bool]) -> DatasetIndex:
        """Apply ``change`` (True when it changed something) with If-Match, retrying lost races.

        A missing or unusable index is rebuilt from the manifests first."""
        for attempt in range(ATTEMPTS):
            found = self.fetch(kind, dataset)
            index: DatasetIndex | None = None
            if found is not None:
                try:
                    index = DatasetIndex.from_bytes(found[0], self.url(kind, dataset))
                except ManifestError as exc:
                    log.warning("Catalog index: %s; rebuilding it from the manifests", exc)
            rebuilt = index is None
            index = index if index is not None else self.build(kind, dataset)
            changed = change(index)
            empty = found is None and not (index.entries or index.invalid)
            if not changed and (not rebuilt or empty):
                return index  # nothing to write (an empty dataset gets its index with its first point)
            try:
                self.save(index, etag=found[1] if found else None)
                return index
            except ClientError as exc:
                if not (is_conflict(exc) or error_code(exc) in NOT_FOUND_CODES):
                    raise
                log.info(
                    "Catalog index %s changed under us (attempt %d); retrying",
                    self.url(kind, dataset),
                    attempt + 1,
                )
                backoff(attempt)
        raise CatalogIndexError(
            f"catalog index {self.url(kind, dataset)}: {ATTEMPTS} conditional writes in a row lost the "
            "race to other writers; the manifests are written, run `backup-pipelines catalog rebuild-index`"
        )

    # -- manifests -------------------------------------------------------------------------------
    def manifest_keys(self, kind: str, dataset: str) -> dict[str, str]:
        """Manifest key -> ETag of a dataset, from a listing of its folder (not its subfolders)."""
        folder = self.folder(kind, dataset)
        found: dict[str, str] = {}
        paginator = self.s3.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith(".json") and not key[len(folder) :].startswith("_"):
                    found[key] = str(obj["ETag"])
        return found

    def read_manifest(self, key: str) -> StoredManifest | None:
        """A manifest with its ETag and revision; None when gone; ``ManifestError`` when unusable."""
        try:
            response = self.s3.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        source = f"s3://{self.bucket}/{key}"
        manifest = Manifest.from_json(response["Body"].read(), source)
        if key != f"{self.folder(manifest.kind, manifest.dataset)}{manifest.recovery_point_id}.json":
            raise ManifestError(
                f"manifest {source} says it is {manifest.kind}/{manifest.dataset}/"
                f"{manifest.recovery_point_id}, which does not match its key"
            )
        revision = str(response.get("Metadata", {}).get(REVISION_META, "0"))
        return StoredManifest(manifest, str(response["ETag"]), int(revision) if revision.isdigit() else 0)

    def read_many(self, keys: Iterable[str]) -> dict[str, StoredManifest | InvalidEntry]:
        """Read manifests in parallel; an unusable one becomes an ``InvalidEntry`` naming why."""

        def one(key: str) -> tuple[str, StoredManifest | InvalidEntry | None]:
            try:
                return key, self.read_manifest(key)
            except ManifestError as exc:
                log.warning("Catalog: skipping unusable manifest: %s", exc)
                return key, InvalidEntry(key=key, reason=str(exc))

        keys = list(keys)
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, max(1, len(keys)))) as pool:
            return {key: found for key, found in pool.map(one, keys) if found is not None}

    def build(self, kind: str, dataset: str) -> DatasetIndex:
        """A fresh index from every manifest of the dataset (one listing, one GET per manifest)."""
        started = time.monotonic()
        keys = self.manifest_keys(kind, dataset)
        index = DatasetIndex(kind, dataset, updated_at=_written_at())
        for key, found in self.read_many(keys).items():
            if isinstance(found, InvalidEntry):
                index.set_invalid(found.model_copy(update={"etag": keys[key]}))
            else:
                index.upsert(found.entry)
        log.info(
            "Catalog index of %s/%s built from %d manifest(s) (%d unusable) in %.1f s",
            kind,
            dataset,
            len(index.entries),
            len(index.invalid),
            time.monotonic() - started,
        )
        return index

    def stale(self, index: DatasetIndex, listed: dict[str, str]) -> list[str]:
        """Keys of manifests the index does not hold as listed (new, changed), ETags compared."""
        known = {
            self.folder(index.kind, index.dataset) + f"{e.recovery_point_id}.json": e.etag
            for e in index.entries
        }
        known |= {i.key: i.etag for i in index.invalid}
        return [key for key, etag in listed.items() if known.get(key) != etag]

    def reconcile(
        self, index: DatasetIndex, listed: dict[str, str], read: dict[str, StoredManifest | InvalidEntry]
    ) -> bool:
        """Make ``index`` match a listing (``listed``) and the manifests ``read`` for its stale keys."""
        folder = self.folder(index.kind, index.dataset)
        changed = False
        for entry in index.entries:
            if f"{folder}{entry.recovery_point_id}.json" not in listed:
                changed |= index.remove(entry.recovery_point_id)
        for item in index.invalid:
            if item.key not in listed:
                index.drop_invalid(item.key)
                changed = True
        for key, found in read.items():
            if isinstance(found, InvalidEntry):
                index.set_invalid(found.model_copy(update={"etag": listed.get(key)}))
                changed = True
            else:
                index.drop_invalid(key)
                changed |= index.upsert(found.entry)
        return changed
