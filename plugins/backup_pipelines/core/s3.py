"""The one S3 gateway of the package: list, head, get, put, copy, delete, restore, Object Lock.

``BackupS3Hook`` is the amazon provider's ``S3Hook`` (the same connection, credentials and endpoint
handling) with the operations every pipeline, the catalog and the drill share, so encryption,
checksums, pagination, Object Lock and restores are done one way.

- **Listing**: ``iter_objects`` is the one paginator (``ListObjectsV2``); ``list_objects`` sorts.
- **Writes** ask S3 for a SHA-256 (``ChecksumAlgorithm="SHA256"``) and compare it with the bytes
  sent; every write carries ``storage.encryption``, a storage class and (on buckets with Object
  Lock) the configured retention. ``if_match``/``if_none_match`` make a put conditional.
- **Server-side copies** with verification live in ``core.s3_copy`` (``copy_verified``).
- **Keys**: any UTF-8 S3 accepts, passed as they are. **Metadata** values are percent-encoded
  (``encode_metadata``; S3 wants ASCII; plain ASCII is unchanged), read with ``decode_metadata``.
- **Restores**: GLACIER and DEEP_ARCHIVE objects need one before a GET (status from ``HeadObject``'s
  ``Restore`` header); moto completes it at once, real S3 in hours (``S3RestoreTrigger`` waits).
- ``bytes_read`` counts every byte of object data read through the worker (the streaming-hash
  fallback), so callers and tests can prove a copy moved no data through it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import BotoCoreError, ClientError

from backup_pipelines.core import clock
from backup_pipelines.core.boto_loader import SharedServiceModel
from backup_pipelines.core.checksums import sha256_b64
from backup_pipelines.core.errors import (
    ArchiveCopyError,
    ChecksumMismatchError,
    ObjectNotRestoredError,
    StorageUnreachableError,
)

if TYPE_CHECKING:
    from backup_pipelines.core.config import Encryption, ObjectLockRetention
    from backup_pipelines.core.s3_copy import CopyResult

log = logging.getLogger(__name__)

STREAM_CHUNK = 8 * 1024 * 1024
DELETE_BATCH = 1000
COLD_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")

RestoreState = Literal["not_needed", "not_requested", "in_progress", "restored"]
_ONGOING_RE = re.compile(r'ongoing-request\s*=\s*"(true|false)"')
_EXPIRY_RE = re.compile(r'expiry-date\s*=\s*"([^"]+)"')


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} has no bucket")
    return bucket, key


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def encode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """User metadata as S3 takes it (ASCII): values percent-encoded, plain ASCII values unchanged."""
    return {key: quote(value, safe=_META_SAFE) for key, value in metadata.items()}


def decode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """The values ``encode_metadata`` wrote, decoded."""
    return {key: unquote(value) for key, value in metadata.items()}


@dataclass(frozen=True, slots=True)
class S3Object:
    """What a listing or a HEAD tells about an object (no data)."""

    bucket: str
    key: str
    size: int
    etag: str
    storage_class: str = "STANDARD"
    last_modified: datetime | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class RestoreStatus:
    bucket: str
    key: str
    state: RestoreState
    storage_class: str
    expiry: str | None = None

    @property
    def readable(self) -> bool:
        return self.state in ("not_needed", "restored")


class BackupS3Hook(SharedServiceModel, S3Hook):
    """An ``S3Hook`` with the backup operations of this package; thread-safe for parallel copies."""

    hook_name = "Backup S3"

    def __init__(self, *args: Any, max_pool_connections: int = 32, **kwargs: Any) -> None:
        kwargs.setdefault("config", {"max_pool_connections": max_pool_connections})
        super().__init__(*args, **kwargs)
        self._bytes_read, self._bytes_lock = 0, threading.Lock()
        self._lock_config: dict[str, bool] = {}

    @property
    def bytes_read(self) -> int:
        """Bytes of object data this hook read through the worker (streaming hashes)."""
        return self._bytes_read

    @property
    def client(self) -> Any:
        return self.get_conn()

    # -- listing and metadata ------------------------------------------------------------------
    def iter_objects(self, bucket: str, prefix: str, *, start_after: str = "") -> Iterator[S3Object]:
        """Every object under a prefix (after ``start_after``), page by page, in S3's (key) order:
        the one paginator. Stopping early stops the listing: pages are requested as they are read."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **extra):
            for obj in page.get("Contents", []):
                yield S3Object(
                    bucket=bucket,
                    key=obj["Key"],
                    size=int(obj["Size"]),
                    etag=obj["ETag"],
                    storage_class=obj.get("StorageClass", "STANDARD"),
                    last_modified=obj.get("LastModified"),
                )

    def list_objects(self, bucket: str, prefix: str) -> list[S3Object]:
        """Every object under a prefix (all pages), sorted by key."""
        return sorted(self.iter_objects(bucket, prefix), key=lambda o: o.key)

    def head(self, bucket: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """``HeadObject`` with checksums; None when the object does not exist."""
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kwargs))
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag; None when it does not exist."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return response["Body"].read(), str(response["ETag"])

    def check_bucket(self, bucket: str, *, role: str = "bucket") -> None:
        """Fail fast, with a clear message naming the bucket and its ``role``, when it cannot be reached."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnreachableError(
                f"{role} s3://{bucket} is not reachable through AWS connection "
                f"{self.aws_conn_id!r}: {exc}; nothing was written or deleted"
            ) from None

    # -- Object Lock ----------------------------------------------------------------------------
    def object_lock_enabled(self, bucket: str) -> bool:
        """Whether the bucket has S3 Object Lock on (cached per hook). Only "no configuration" means
        no lock; any other error (AccessDenied, a network fault) is raised, never read as "unlocked"."""
        if bucket not in self._lock_config:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if error_code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = False
            self._lock_config[bucket] = enabled
        return self._lock_config[bucket]

    def locked_keys(self, bucket: str, keys: Iterable[str], *, now: datetime) -> list[str]:
        """Keys S3 Object Lock still protects (retention in the future, or a legal hold), described."""
        locked = []
        for key in keys:
            head = self.head(bucket, key) or {}
            until = head.get("ObjectLockRetainUntilDate")
            if head.get("ObjectLockLegalHoldStatus") == "ON" or (until is not None and until > now):
                locked.append(f"{key} (until {until.isoformat() if until else 'legal hold'})")
        return locked

    def write_args(
        self,
        bucket: str,
        *,
        encryption: Encryption,
        storage_class: str,
        object_lock: ObjectLockRetention | None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Encryption, storage class and (when the bucket has Object Lock) retention for a write."""
        args: dict[str, Any] = {"StorageClass": storage_class, **encryption.s3_extra_args()}
        if object_lock is not None and self.object_lock_enabled(bucket):
            args["ObjectLockMode"] = object_lock.mode
            args["ObjectLockRetainUntilDate"] = (now or clock.utcnow()) + timedelta(days=object_lock.days)
        return args

    def retain(self, bucket: str, key: str, object_lock: ObjectLockRetention | None, now: datetime) -> None:
        """Put Object Lock retention on an object when configured and the bucket has Object Lock."""
        if object_lock is None or not self.object_lock_enabled(bucket):
            return
        self.client.put_object_retention(
            Bucket=bucket,
            Key=key,
            Retention={"Mode": object_lock.mode, "RetainUntilDate": now + timedelta(days=object_lock.days)},
        )

    # -- checksums ------------------------------------------------------------------------------
    def object_sha256(self, bucket: str, key: str, *, allow_stream: bool = True) -> str:
        """The object's full-object SHA-256 (base64), from S3's checksum or by streaming it.

        Streaming reads the bytes through the worker (counted in ``bytes_read``); pass
        ``allow_stream=False`` where that must not happen.
        """
        head = self.head(bucket, key)
        if head is None:
            raise ArchiveCopyError(f"s3://{bucket}/{key} does not exist")
        stored = head.get("ChecksumSHA256")
        if stored and "-" not in stored and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return str(stored)
        if not allow_stream:
            raise ArchiveCopyError(
                f"s3://{bucket}/{key} has no full-object SHA-256 in S3 and streaming is not allowed"
            )
        return self.stream_sha256(bucket, key)

    def stream_sha256(self, bucket: str, key: str) -> str:
        """Hash an object by reading it (the fallback when S3 holds no SHA-256)."""
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            if error_code(exc) == "InvalidObjectState":
                raise ObjectNotRestoredError(
                    f"s3://{bucket}/{key} is in a cold storage class and not restored; "
                    "request a restore and wait for it (S3RestoreTrigger) before reading it"
                ) from None
            raise
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(STREAM_CHUNK):
            digest.update(chunk)
            with self._bytes_lock:
                self._bytes_read += len(chunk)
        return base64.b64encode(digest.digest()).decode()

    # -- writes ---------------------------------------------------------------------------------
    def put_encrypted(
        self,
        bucket: str,
        key: str,
        body: bytes | IO[bytes],
        *,
        encryption: Encryption,
        sha256: str | None = None,
        storage_class: str = "STANDARD",
        object_lock: ObjectLockRetention | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        now: datetime | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> str:
        """Put bytes (or a seekable file with its base64 ``sha256``) with encryption, storage class,
        a SHA-256 S3 checks (botocore does not hash the body again) and Object Lock retention.
        ``if_match`` (an ETag) or ``if_none_match="*"``: a conditional write (412 when it lost)."""
        if sha256 is None:
            if not isinstance(body, bytes):
                raise TypeError("put_encrypted: a file body needs its sha256")
            sha256 = sha256_b64(body)
        args = self.write_args(
            bucket,
            encryption=encryption,
            storage_class=storage_class,
            object_lock=object_lock,
            now=now,
        )
        if if_match is not None:
            args["IfMatch"] = if_match
        if if_none_match is not None:
            args["IfNoneMatch"] = if_none_match
        response = self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha256,
            ContentType=content_type,
            Metadata=encode_metadata(metadata or {}),
            **args,
        )
        returned = response.get("ChecksumSHA256")
        if returned and returned != sha256:
            raise ChecksumMismatchError(
                f"s3://{bucket}/{key}: S3 stored SHA-256 {returned}, the bytes sent hash to {sha256}"
            )
        return str(response["ETag"])

    def copy_verified(self, source: S3Object, dest_bucket: str, dest_key: str, **kwargs: Any) -> CopyResult:
        """Server-side copy of ``source`` to the destination, verified (see ``core.s3_copy``)."""
        from backup_pipelines.core.s3_copy import VerifiedCopy

        return VerifiedCopy(self).copy(source, dest_bucket, dest_key, **kwargs)

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> int:
        """Delete keys with DeleteObjects, 1,000 a request, as ``keys`` streams in; returns how many.

        Raises naming the first key S3 refused (the batches before it are deleted)."""
        deleted, stream = 0, iter(keys)
        while batch := list(islice(stream, DELETE_BATCH)):
            response = self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise ArchiveCopyError(
                    f"could not delete s3://{bucket}/{first['Key']} ({len(errors)} key(s) refused): "
                    f"{first.get('Code')} {first.get('Message')}"
                )
            deleted += len(batch)
        return deleted

    # -- restores -------------------------------------------------------------------------------
    def restore_status(self, bucket: str, key: str) -> RestoreStatus:
        """Whether an object can be read now, is being restored, or needs a restore request."""
        head = self.head(bucket, key)
        if head is None:
            raise ArchiveCopyError(f"s3://{bucket}/{key} does not exist")
        storage_class = head.get("StorageClass", "STANDARD")
        if storage_class not in COLD_CLASSES and not head.get("ArchiveStatus"):
            return RestoreStatus(bucket, key, "not_needed", storage_class)
        restore = head.get("Restore")
        if not restore:
            return RestoreStatus(bucket, key, "not_requested", storage_class)
        ongoing = _ONGOING_RE.search(restore)
        expiry = _EXPIRY_RE.search(restore)
        state: RestoreState = "in_progress" if ongoing and ongoing.group(1) == "true" else "restored"
        return RestoreStatus(bucket, key, state, storage_class, expiry.group(1) if expiry else None)

    def request_restore(self, bucket: str, key: str, *, days: int = 1, tier: str = "Bulk") -> RestoreStatus:
        """Ask S3 to restore a GLACIER/DEEP_ARCHIVE object; a no-op for readable objects.

        Safe to repeat: an object already restored or being restored is left as it is.
        """
        status = self.restore_status(bucket, key)
        if status.state != "not_requested":
            return status
        try:
            self.client.restore_object(
                Bucket=bucket,
                Key=key,
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
        except ClientError as exc:
            if error_code(exc) != "RestoreAlreadyInProgress":
                raise
        log.info("requested %s restore of s3://%s/%s for %d day(s)", tier, bucket, key, days)
        return self.restore_status(bucket, key)

    # -- lifecycle ------------------------------------------------------------------------------
    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules; [] when it has none."""
        try:
            return list(self.client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", []))
        except ClientError as exc:
            if error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        self.client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
