"""Generic S3 helpers for archives: verified server-side copies, SHA-256s, encrypted puts, restores.

Every pipeline that writes or thaws archive objects goes through this hook, so encryption,
checksums, Object Lock and restore handling are done one way.

- **Server-side copy**: ``copy_verified`` uses ``CopyObject`` (``UploadPartCopy`` above the
  multipart threshold, 5 GiB by default, which is S3's single-copy limit). The data never passes
  through the worker; only headers do. ``bytes_read`` counts every byte of object data this hook
  did read (the streaming-hash fallback), so callers and tests can prove it stays 0.
- **Checksums**: copies and puts ask S3 for a SHA-256 (``ChecksumAlgorithm="SHA256"``) and read it
  back with ``ChecksumMode="ENABLED"``. Single-part objects get a full-object SHA-256; multipart
  copies get S3's composite checksum (``<base64>-<parts>``) when S3 returns part checksums, and
  are otherwise verified by size + multipart ETag, which equals the source's ETag when the part
  sizes match (the hook copies with the source's own part size when it can tell it).
- **Idempotent**: a destination that already holds the same source version (same source ETag
  and size, recorded in the destination's metadata) is not copied again.
- **Restores** (``request_restore``/``restore_status``): GLACIER and DEEP_ARCHIVE objects must be
  restored before a GET; GLACIER_IR and the other classes are readable at once (``not_needed``).
  Status comes from the ``Restore`` header of ``HeadObject``: absent = not requested,
  ``ongoing-request="true"`` = in progress, ``ongoing-request="false", expiry-date=...`` = readable.

moto (the embedded stack's S3, server mode, 5.2) behaviour, checked by hand and by the tests:
``RestoreObject`` completes *immediately* (the first call answers 202, a repeat 200, and the very
next ``HeadObject`` already shows ``ongoing-request="false"`` with an expiry date), for GLACIER and
DEEP_ARCHIVE alike; it answers ``InvalidObjectState`` for a restore of a STANDARD object and for a
GET of an unrestored GLACIER object. ``CopyObject`` with ``ChecksumAlgorithm=SHA256`` returns and
stores a correct full-object SHA-256. ``UploadPartCopy`` returns no part checksum, so multipart
copies are verified by size + ETag there. Objects put without a checksum algorithm get a CRC32
from moto (AWS adds CRC64NVME), never a SHA-256. Real S3 restores take minutes to hours
(see docs/runbooks/emr-output-recovery.md), which is why ``S3RestoreTrigger`` waits in the triggerer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from backup_pipelines.core.config import Encryption, ObjectLockRetention
from backup_pipelines.core.errors import (
    ArchiveCopyError,
    ChecksumMismatchError,
    ObjectNotRestoredError,
    SourceChangedError,
)

log = logging.getLogger(__name__)

GiB = 1024**3
MiB = 1024**2
MAX_SINGLE_COPY_BYTES = 5 * GiB
DEFAULT_PART_SIZE = 512 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
STREAM_CHUNK = 8 * MiB
COLD_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
META_SOURCE_ETAG = "bp-source-etag"
META_SOURCE_SIZE = "bp-source-size"
META_SOURCE = "bp-source"

RestoreState = Literal["not_needed", "not_requested", "in_progress", "restored"]
_ONGOING_RE = re.compile(r'ongoing-request\s*=\s*"(true|false)"')
_EXPIRY_RE = re.compile(r'expiry-date\s*=\s*"([^"]+)"')


@dataclass(frozen=True)
class S3Object:
    """What a listing or a HEAD tells about an object (no data)."""

    bucket: str
    key: str
    size: int
    etag: str
    storage_class: str = "STANDARD"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class CopyResult:
    """A verified archive copy: what is now at the destination and how it was checked."""

    source: S3Object
    bucket: str
    key: str
    size: int
    etag: str
    sha256: str | None
    storage_class: str
    copied: bool
    multipart: bool
    verified_by: str

    @property
    def sha256_hex(self) -> str | None:
        """The SHA-256 as hex (the catalog's form) when it is a full-object checksum."""
        return b64_to_hex(self.sha256) if self.sha256 and "-" not in self.sha256 else None


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


@dataclass
class _Counter:
    value: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated part MD5s, then ``-<parts>``."""
    digests = b"".join(binascii.unhexlify(e.strip('"')) for e in part_etags)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(part_etags)}"'  # noqa: S324 - S3's ETag format


def composite_sha256(part_checksums: list[str]) -> str:
    """S3's composite checksum of a multipart object from its parts' base64 SHA-256s."""
    digest = hashlib.sha256(b"".join(base64.b64decode(c) for c in part_checksums)).digest()
    return f"{base64.b64encode(digest).decode()}-{len(part_checksums)}"


def composite_sha256_of_file(path: str, part_size: int, *, read_size: int = 8 * 1024 * 1024) -> str:
    """The composite checksum S3 gives ``path`` uploaded in parts of ``part_size`` bytes (read
    ``read_size`` bytes at a time: a part is not held in memory)."""
    parts: list[str] = []
    with open(path, "rb") as handle:
        while True:
            digest = hashlib.sha256()
            left = part_size
            while left and (chunk := handle.read(min(read_size, left))):
                digest.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            parts.append(base64.b64encode(digest.digest()).decode())
    return composite_sha256(parts)


def parts_of(etag: str) -> int:
    """How many parts the object with this ETag was uploaded in (1: a single PUT)."""
    match = re.search(r"-(\d+)\"?$", etag)
    return int(match.group(1)) if match else 1


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ArchiveHook(S3Hook):
    """An ``S3Hook`` with the archive operations of this package; thread-safe for parallel copies."""

    def __init__(self, *args: Any, max_pool_connections: int = 32, **kwargs: Any) -> None:
        kwargs.setdefault("config", {"max_pool_connections": max_pool_connections})
        super().__init__(*args, **kwargs)
        self._bytes_read = _Counter()
        self._lock_config: dict[str, bool] = {}

    # -- accounting ------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        """Bytes of object data this hook read through the worker (streaming hashes)."""
        return self._bytes_read.value

    @property
    def client(self) -> Any:
        return self.get_conn()

    # -- listing and metadata ----------------------------------------------------------------
    def list_objects(self, bucket: str, prefix: str) -> list[S3Object]:
        """Every object under a prefix (all pages), sorted by key."""
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found.append(
                    S3Object(
                        bucket=bucket,
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=obj["ETag"],
                        storage_class=obj.get("StorageClass", "STANDARD"),
                    )
                )
        return sorted(found, key=lambda o: o.key)

    def head(self, bucket: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """``HeadObject`` with checksums; None when the object does not exist."""
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kwargs))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def object_lock_enabled(self, bucket: str) -> bool:
        """Whether the bucket has S3 Object Lock on (cached per hook)."""
        if bucket not in self._lock_config:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _error_code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = False
            self._lock_config[bucket] = enabled
        return self._lock_config[bucket]

    def write_args(
        self,
        bucket: str,
        *,
        encryption: Encryption,
        storage_class: str,
        object_lock: ObjectLockRetention | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Encryption, storage class and (when the bucket has Object Lock) retention for a write."""
        args: dict[str, Any] = {"StorageClass": storage_class, **encryption.s3_extra_args()}
        if object_lock is not None and self.object_lock_enabled(bucket):
            args["ObjectLockMode"] = object_lock.mode
            args["ObjectLockRetainUntilDate"] = now + timedelta(days=object_lock.days)
        return args

    # -- checksums ---------------------------------------------------------------------------
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
            if _error_code(exc) == "InvalidObjectState":
                raise ObjectNotRestoredError(
                    f"s3://{bucket}/{key} is in a cold storage class and not restored; "
                    "request a restore and wait for it (S3RestoreTrigger) before reading it"
                ) from None
            raise
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(STREAM_CHUNK):
            digest.update(chunk)
            self._bytes_read.add(len(chunk))
        return base64.b64encode(digest.digest()).decode()

    # -- writes ------------------------------------------------------------------------------
    def put_encrypted(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        encryption: Encryption,
        storage_class: str = "STANDARD",
        object_lock: ObjectLockRetention | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        now: datetime | None = None,
    ) -> CopyResult:
        """Put bytes with encryption, storage class, a SHA-256 checksum and Object Lock retention."""
        from backup_pipelines.core.catalog import utcnow

        args = self.write_args(
            bucket,
            encryption=encryption,
            storage_class=storage_class,
            object_lock=object_lock,
            now=now or utcnow(),
        )
        response = self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ContentType=content_type,
            Metadata=metadata or {},
            **args,
        )
        expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
        returned = response.get("ChecksumSHA256")
        if returned and returned != expected:
            raise ChecksumMismatchError(
                f"s3://{bucket}/{key}: S3 stored SHA-256 {returned}, the bytes sent hash to {expected}"
            )
        obj = S3Object(bucket, key, len(body), response["ETag"], storage_class)
        return CopyResult(
            source=obj,
            bucket=bucket,
            key=key,
            size=len(body),
            etag=response["ETag"],
            sha256=expected,
            storage_class=storage_class,
            copied=True,
            multipart=False,
            verified_by="sha256",
        )

    # -- verified server-side copy -------------------------------------------------------------
    def copy_verified(
        self,
        source: S3Object,
        dest_bucket: str,
        dest_key: str,
        *,
        encryption: Encryption,
        storage_class: str = "STANDARD",
        object_lock: ObjectLockRetention | None = None,
        multipart_threshold: int = MAX_SINGLE_COPY_BYTES,
        part_size: int = DEFAULT_PART_SIZE,
        now: datetime | None = None,
    ) -> CopyResult:
        """Copy ``source`` server-side to the destination and verify it; skip if already there.

        ``source`` is what the listing saw: the copy is conditional on its ETag, so an object
        rewritten since the listing fails with ``SourceChangedError`` instead of archiving a
        version nobody listed. A verification mismatch raises ``ChecksumMismatchError``.
        """
        from backup_pipelines.core.catalog import utcnow

        src_head = self.head(source.bucket, source.key)
        if src_head is None:
            raise SourceChangedError(f"{source.url} disappeared after it was listed")
        if src_head["ETag"] != source.etag or int(src_head["ContentLength"]) != source.size:
            raise SourceChangedError(
                f"{source.url} changed after it was listed (ETag {source.etag} -> {src_head['ETag']})"
            )
        existing = self.head(dest_bucket, dest_key)
        when = now or utcnow()
        if existing is not None and self._same_version(existing, source):
            result = self._check_copy(source, src_head, dest_bucket, dest_key, expected=None, copied=False)
            if not existing.get("ObjectLockRetainUntilDate"):
                self._retain(dest_bucket, dest_key, object_lock, when)
            return result

        # Retention is set after the verified copy (PutObjectRetention): CopyObject has no body to
        # checksum, and some S3 implementations refuse lock headers on it.
        args = self.write_args(
            dest_bucket, encryption=encryption, storage_class=storage_class, object_lock=None, now=when
        )
        metadata = {
            **src_head.get("Metadata", {}),
            META_SOURCE_ETAG: source.etag.strip('"'),
            META_SOURCE_SIZE: str(source.size),
            META_SOURCE: source.url,
        }
        common = {
            "ContentType": src_head.get("ContentType", "application/octet-stream"),
            "Metadata": metadata,
            **args,
        }
        if source.size > multipart_threshold:
            expected = self._multipart_copy(
                source,
                src_head=src_head,
                dest_bucket=dest_bucket,
                dest_key=dest_key,
                common=common,
                part_size=part_size,
            )
        else:
            response = self.client.copy_object(
                Bucket=dest_bucket,
                Key=dest_key,
                CopySource={"Bucket": source.bucket, "Key": source.key},
                CopySourceIfMatch=source.etag,
                MetadataDirective="REPLACE",
                ChecksumAlgorithm="SHA256",
                **common,
            )
            result = response.get("CopyObjectResult", {})
            expected = {"sha256": result.get("ChecksumSHA256"), "etag": result.get("ETag")}
        result = self._check_copy(source, src_head, dest_bucket, dest_key, expected=expected, copied=True)
        self._retain(dest_bucket, dest_key, object_lock, when)
        return result

    def _retain(self, bucket: str, key: str, object_lock: ObjectLockRetention | None, now: datetime) -> None:
        """Put Object Lock retention on an object when configured and the bucket has Object Lock."""
        if object_lock is None or not self.object_lock_enabled(bucket):
            return
        self.client.put_object_retention(
            Bucket=bucket,
            Key=key,
            Retention={
                "Mode": object_lock.mode,
                "RetainUntilDate": now + timedelta(days=object_lock.days),
            },
        )

    @staticmethod
    def _same_version(dest_head: dict[str, Any], source: S3Object) -> bool:
        meta = dest_head.get("Metadata", {})
        return (
            meta.get(META_SOURCE_ETAG) == source.etag.strip('"')
            and meta.get(META_SOURCE_SIZE) == str(source.size)
            and int(dest_head.get("ContentLength", -1)) == source.size
        )

    def _source_part_size(self, source: S3Object) -> int | None:
        """The part size the source was uploaded with, when it is multipart (HEAD of part 1)."""
        if parts_of(source.etag) <= 1:
            return None
        part = self.head(source.bucket, source.key, PartNumber=1)
        return int(part["ContentLength"]) if part else None

    def _multipart_copy(
        self,
        source: S3Object,
        *,
        src_head: dict[str, Any],
        dest_bucket: str,
        dest_key: str,
        common: dict[str, Any],
        part_size: int,
    ) -> dict[str, Any]:
        size = source.size
        chosen = self._source_part_size(source) or part_size
        chosen = max(chosen, MIN_PART_SIZE, -(-size // MAX_PARTS))
        upload = self.client.create_multipart_upload(
            Bucket=dest_bucket, Key=dest_key, ChecksumAlgorithm="SHA256", **common
        )
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            for number, start in enumerate(range(0, size, chosen), start=1):
                end = min(start + chosen, size) - 1
                response = self.client.upload_part_copy(
                    Bucket=dest_bucket,
                    Key=dest_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": source.bucket, "Key": source.key},
                    CopySourceIfMatch=source.etag,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                result = response["CopyPartResult"]
                part = {"PartNumber": number, "ETag": result["ETag"]}
                if result.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = result["ChecksumSHA256"]
                parts.append(part)
                if number % 10 == 0:
                    log.info("multipart copy %s: %d parts of %d bytes copied", source.url, number, chosen)
            self.client.complete_multipart_upload(
                Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except Exception:
            self.client.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
            raise
        part_sums = [p["ChecksumSHA256"] for p in parts if "ChecksumSHA256" in p]
        return {
            "etag": multipart_etag([p["ETag"] for p in parts]),
            "sha256": composite_sha256(part_sums) if len(part_sums) == len(parts) else None,
            "part_size_matches": parts_of(source.etag) == len(parts),
        }

    def _check_copy(
        self,
        source: S3Object,
        src_head: dict[str, Any],
        dest_bucket: str,
        dest_key: str,
        *,
        expected: dict[str, Any] | None,
        copied: bool,
    ) -> CopyResult:
        """Compare the destination with the source and with what the copy answered."""
        url = f"s3://{dest_bucket}/{dest_key}"
        dest = self.head(dest_bucket, dest_key)
        if dest is None:
            raise ChecksumMismatchError(f"{url}: the copy of {source.url} is missing after the copy")
        problems = []
        if int(dest["ContentLength"]) != source.size:
            problems.append(f"size {dest['ContentLength']} != source size {source.size}")
        multipart = parts_of(dest["ETag"]) > 1
        if multipart:
            verified_by = self._check_multipart(source, src_head, dest, expected, problems)
        else:
            verified_by = self._check_single(source, src_head, dest, expected, problems)
        if problems:
            raise ChecksumMismatchError(
                f"{url} (copy of {source.url}) failed verification: " + "; ".join(problems)
            )
        return CopyResult(
            source=source,
            bucket=dest_bucket,
            key=dest_key,
            size=source.size,
            etag=dest["ETag"],
            sha256=dest.get("ChecksumSHA256"),
            storage_class=dest.get("StorageClass", "STANDARD"),
            copied=copied,
            multipart=multipart,
            verified_by=verified_by,
        )

    def _check_single(
        self,
        source: S3Object,
        src_head: dict[str, Any],
        dest: dict[str, Any],
        expected: dict[str, Any] | None,
        problems: list[str],
    ) -> str:
        dest_sha = dest.get("ChecksumSHA256")
        src_sha = src_head.get("ChecksumSHA256")
        if not dest_sha:
            problems.append("S3 holds no SHA-256 for the copy")
        if expected is not None and expected.get("sha256") and dest_sha != expected["sha256"]:
            problems.append(f"SHA-256 {dest_sha} != {expected['sha256']} computed by S3 during the copy")
        if src_sha and "-" not in src_sha and dest_sha != src_sha:
            problems.append(f"SHA-256 {dest_sha} != source SHA-256 {src_sha}")
        if parts_of(source.etag) == 1 and not self._kms(src_head, dest) and dest["ETag"] != source.etag:
            problems.append(f"ETag {dest['ETag']} != source ETag {source.etag}")
        return "sha256"

    def _check_multipart(
        self,
        source: S3Object,
        src_head: dict[str, Any],
        dest: dict[str, Any],
        expected: dict[str, Any] | None,
        problems: list[str],
    ) -> str:
        verified_by = "size+etag"
        dest_sha = dest.get("ChecksumSHA256")
        if expected is not None and dest["ETag"] != expected["etag"]:
            problems.append(f"ETag {dest['ETag']} != {expected['etag']} assembled from the copied parts")
        if expected is not None and expected.get("sha256"):
            verified_by = "sha256-composite"
            if dest_sha and dest_sha.split("-")[0] != expected["sha256"].split("-")[0]:
                problems.append(f"composite SHA-256 {dest_sha} != {expected['sha256']}")
        same_layout = parts_of(source.etag) == parts_of(dest["ETag"])
        if same_layout and not self._kms(src_head, dest) and dest["ETag"] != source.etag:
            problems.append(f"ETag {dest['ETag']} != source ETag {source.etag} (same part layout)")
        return verified_by

    @staticmethod
    def _kms(*heads: dict[str, Any]) -> bool:
        """SSE-KMS (and SSE-C) objects have ETags that are not MD5s of the content."""
        return any(h.get("ServerSideEncryption") == "aws:kms" or h.get("SSECustomerAlgorithm") for h in heads)

    # -- restores ------------------------------------------------------------------------------
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
            if _error_code(exc) != "RestoreAlreadyInProgress":
                raise
        log.info("requested %s restore of s3://%s/%s for %d day(s)", tier, bucket, key, days)
        return self.restore_status(bucket, key)

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        """Delete keys in batches of 1000; raises naming the first key S3 refused."""
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise ArchiveCopyError(
                    f"could not delete s3://{bucket}/{first['Key']}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )

    # -- lifecycle -----------------------------------------------------------------------------
    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules; [] when it has none."""
        try:
            return list(self.client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", []))
        except ClientError as exc:
            if _error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        self.client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
