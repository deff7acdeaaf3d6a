"""Manifests in S3 (schema v2): the summary at ``<id>.json``, the object list in a file of its own.

- The object list of a point is stored at ``_objects/<id>.<sha256 prefix>.json`` in the dataset's
  catalog folder (content-addressed: a rewrite with the same objects writes the same key), and
  written *before* the manifest that names it. Only what needs the objects reads it (verify,
  restore, the drill): ``read`` loads it, a re-marking of the point never touches it.
- Writes are conditional: a new point with ``If-None-Match: *``, a rewrite with ``If-Match`` on the
  ETag it replaces, each carrying ``revision`` (S3 metadata) one above the one it replaces, so two
  writers of one point are ordered and the index can tell the later write from the earlier.
- A v1 manifest (objects inside) is read as it is; its next write stores it as v2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from backup_pipelines.core.errors import ManifestError, RecoveryPointNotFoundError
from backup_pipelines.core.index_store import READ_THREADS, REVISION_META, backoff, is_conflict
from backup_pipelines.core.manifest import MANIFEST_STORAGE_CLASS, Manifest, ObjectEntry
from backup_pipelines.core.s3 import NOT_FOUND_CODES, decode_metadata, error_code

if TYPE_CHECKING:
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

OBJECTS_META = "objects-file"
OBJECTS_FOLDER = "_objects/"
ATTEMPTS = 40


@dataclass(frozen=True)
class Written:
    """A manifest as stored: its key, ETag and revision (what its index entry records)."""

    key: str
    etag: str
    revision: int


SPOOL_BYTES = 1024 * 1024  # an object list larger than this (about 5,000 objects) goes to a temporary file


def write_objects(manifest: Manifest, out: IO[bytes]) -> Any:
    """Write the object list file, ``{"recovery_point_id":...,"objects":[...]}`` in compact JSON,
    to ``out`` one entry at a time; return its SHA-256 (a ``hashlib`` object).

    The same bytes as dumping the whole list of dicts at once, but never the whole file in memory:
    at 100,000 objects, joining the entries' strings and encoding the result held three copies of
    the 22 MB file at once (about 0.44 KB per object of the archive's peak)."""
    digest = hashlib.sha256()

    def put(text: str) -> None:
        chunk = text.encode()
        digest.update(chunk)
        out.write(chunk)

    put(f'{{"recovery_point_id":{json.dumps(manifest.recovery_point_id)},"objects":[')
    for i, entry in enumerate(manifest.objects):
        text = json.dumps(entry.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
        put(f",{text}" if i else text)
    put("]}")
    return digest


class ManifestStore:
    """Reads and writes manifests and their object lists through the S3 gateway."""

    def __init__(self, s3: BackupS3Hook, *, bucket: str, prefix: str, encryption: Encryption) -> None:
        self.s3, self.bucket, self.prefix, self.encryption = s3, bucket, prefix, encryption

    def folder(self, kind: str, dataset: str) -> str:
        return f"{self.prefix}{kind}/{dataset}/"

    def key_for(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return f"{self.folder(kind, dataset)}{recovery_point_id}.json"

    # -- writing ---------------------------------------------------------------------------------
    def put_objects(self, manifest: Manifest) -> str | None:
        """Store the object list (content-addressed) and return its name in the dataset folder."""
        if not manifest.objects:
            return manifest.objects_file
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            digest = write_objects(manifest, body)
            body.seek(0)
            name = f"{OBJECTS_FOLDER}{manifest.recovery_point_id}.{digest.hexdigest()[:16]}.json"
            self.s3.put_encrypted(
                self.bucket,
                self.folder(manifest.kind, manifest.dataset) + name,
                body,
                sha256=base64.b64encode(digest.digest()).decode(),
                encryption=self.encryption,
                storage_class=MANIFEST_STORAGE_CLASS,
                content_type="application/json",
            )
        return name

    def write(self, manifest: Manifest) -> Written:
        """Objects first, then the manifest, conditionally on what it replaces (retried on 412)."""
        name = self.put_objects(manifest)
        body = manifest.summary(objects_file=name).to_json()
        key = self.key_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        current = None  # (etag, revision, objects file) of the manifest being replaced; None: new
        for attempt in range(ATTEMPTS):
            try:
                written = self._put(key, body, name, current)
            except ClientError as exc:
                if not (is_conflict(exc) or error_code(exc) in NOT_FOUND_CODES):
                    raise
                backoff(attempt)
                current = self._current(key)
                continue
            if current and current[2] and current[2] != name:
                self.s3.client.delete_object(
                    Bucket=self.bucket, Key=self.folder(manifest.kind, manifest.dataset) + current[2]
                )
            return written
        raise ManifestError(f"manifest s3://{self.bucket}/{key}: {ATTEMPTS} conditional writes lost the race")

    def _put(
        self, key: str, body: bytes, objects_file: str | None, current: tuple[str, int, str] | None
    ) -> Written:
        revision = (current[1] if current else 0) + 1
        metadata = {REVISION_META: str(revision)} | ({OBJECTS_META: objects_file} if objects_file else {})
        etag = self.s3.put_encrypted(
            self.bucket,
            key,
            body,
            encryption=self.encryption,
            storage_class=MANIFEST_STORAGE_CLASS,
            content_type="application/json",
            metadata=metadata,
            if_match=current[0] if current else None,
            if_none_match=None if current else "*",
        )
        return Written(key, etag, revision)

    def _current(self, key: str) -> tuple[str, int, str] | None:
        head = self.s3.head(self.bucket, key)
        if head is None:
            return None
        meta = decode_metadata(head.get("Metadata", {}))
        revision = meta.get(REVISION_META, "0")
        return str(head["ETag"]), int(revision) if revision.isdigit() else 0, meta.get(OBJECTS_META, "")

    def modify(
        self, kind: str, dataset: str, recovery_point_id: str, change: Callable[[Manifest], Manifest]
    ) -> tuple[Manifest, Written]:
        """Read the stored manifest (not its objects), apply ``change``, write it back with If-Match;
        a lost race reads it again, so a concurrent change is never overwritten. Returns the stored
        summary (schema 2, objects not loaded) and how it was written."""
        key = self.key_for(kind, dataset, recovery_point_id)
        for attempt in range(ATTEMPTS):
            raw, etag, meta = self._get(key)
            if raw is None:
                raise self._not_found(kind, dataset, recovery_point_id)
            stored = Manifest.from_json(raw, f"s3://{self.bucket}/{key}")
            name = self.put_objects(stored) if stored.objects else stored.objects_file
            updated = change(stored)
            revision = meta.get(REVISION_META, "0")
            current = (etag, int(revision) if revision.isdigit() else 0, meta.get(OBJECTS_META, ""))
            try:
                summary = updated.summary(objects_file=name)
                return summary, self._put(key, summary.to_json(), name, current)
            except ClientError as exc:
                if not is_conflict(exc):
                    raise
                backoff(attempt)
        raise ManifestError(f"manifest s3://{self.bucket}/{key}: {ATTEMPTS} conditional writes lost the race")

    def delete(self, kind: str, dataset: str, recovery_point_id: str) -> None:
        key = self.key_for(kind, dataset, recovery_point_id)
        current = self._current(key)
        self.s3.client.delete_object(Bucket=self.bucket, Key=key)
        if current and current[2]:
            self.s3.client.delete_object(Bucket=self.bucket, Key=self.folder(kind, dataset) + current[2])

    # -- reading ---------------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes | None, str, dict[str, str]]:
        try:
            response = self.s3.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None, "", {}
            raise
        return response["Body"].read(), str(response["ETag"]), decode_metadata(response.get("Metadata", {}))

    def _not_found(self, kind: str, dataset: str, recovery_point_id: str) -> RecoveryPointNotFoundError:
        return RecoveryPointNotFoundError(
            f"no recovery point {recovery_point_id!r} for {kind} dataset {dataset!r} "
            f"(s3://{self.bucket}/{self.key_for(kind, dataset, recovery_point_id)} does not exist)"
        )

    def read(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest:
        """The whole manifest, its objects loaded; a rewrite racing the read is read again once."""
        key = self.key_for(kind, dataset, recovery_point_id)
        for _ in range(2):
            raw, _etag, _meta = self._get(key)
            if raw is None:
                raise self._not_found(kind, dataset, recovery_point_id)
            manifest = Manifest.from_json(raw, f"s3://{self.bucket}/{key}")
            if not manifest.objects_file:
                return manifest
            objects = self._objects(manifest)
            if objects is not None:
                return manifest.with_objects(objects)
        raise ManifestError(
            f"manifest s3://{self.bucket}/{key} names object list {manifest.objects_file}, "
            "which does not exist"
        )

    def _objects(self, manifest: Manifest) -> list[ObjectEntry] | None:
        key = self.folder(manifest.kind, manifest.dataset) + str(manifest.objects_file)
        found = self.s3.get_bytes(self.bucket, key)
        if found is None:
            return None
        try:
            data: Any = json.loads(found[0])
            objects = [ObjectEntry.model_validate(o) for o in data["objects"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"object list s3://{self.bucket}/{key} is corrupt: {exc}") from None
        if len(objects) != manifest.object_count:
            raise ManifestError(
                f"object list s3://{self.bucket}/{key} holds {len(objects)} objects, "
                f"its manifest records {manifest.object_count}"
            )
        return objects

    def read_many(self, kind: str, dataset: str, ids: Iterable[str]) -> dict[str, Manifest]:
        """Whole manifests of ``ids``, read in parallel; a missing or unusable one is logged and left out."""

        def one(point_id: str) -> tuple[str, Manifest | None]:
            try:
                return point_id, self.read(kind, dataset, point_id)
            except (ManifestError, RecoveryPointNotFoundError) as exc:
                log.warning("Catalog: skipping unusable manifest: %s", exc)
                return point_id, None

        ids = list(ids)
        if not ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(ids))) as pool:
            return {point_id: m for point_id, m in pool.map(one, ids) if m is not None}
