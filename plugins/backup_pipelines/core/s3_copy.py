"""Verified server-side copies: the data never passes through the worker, only headers do.

``copy_listed`` is one copy of an object *as a listing saw it* (key, size, ETag), in one request in
the common case: ``CopyObject`` conditional on the listed ETag (``CopySourceIfMatch``: S3 answers
412 when the source changed since the listing), asking S3 for a SHA-256
(``ChecksumAlgorithm="SHA256"``) and verifying the copy from S3's answer (``CopyObjectResult``):

- the SHA-256 S3 computed over the bytes it wrote (a HEAD of the copy only when the answer lacks
  one, i.e. after a multipart copy);
- for a single-part source, the copy's ETag (an MD5 of the content unless SSE-KMS/SSE-C is involved)
  must equal the listed ETag. When it does not, one HEAD of the source tells why: it changed since
  the listing (``SourceChangedError``; real S3 refuses such a copy with 412 already, moto ignores
  ``CopySourceIfMatch``), it is KMS-encrypted (its ETag is no MD5: accepted), or the copy differs
  (``ChecksumMismatchError``).

Objects above the multipart threshold (5 GiB by default, S3's single-copy limit) are copied with
``UploadPartCopy`` in the source's own part size when S3 tells it, each part conditional on the
ETag; a failed multipart copy is aborted by the task that started it (a killed task leaves it to
the bucket's ``AbortIncompleteMultipartUpload`` rule, see ``core.lifecycle``).

Copies keep the source's content type and user metadata (``MetadataDirective="COPY"``) and add
none: where an object came from is recorded in the manifest, not in S3 metadata (which S3 requires
to be ASCII). Keys are passed to S3 exactly as listed, so any key S3 accepts copies; a destination
key above S3's 1,024-byte limit is refused before any request, naming the key.

``copy`` (``BackupS3Hook.copy_verified``) is the one-object form: it skips a destination that
already holds the same content, copies with ``copy_listed``, then HEADs the copy to verify it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from backup_pipelines.core import clock
from backup_pipelines.core.checksums import b64_to_hex, composite_sha256, multipart_etag, parts_of
from backup_pipelines.core.errors import (
    ArchiveCopyError,
    ChecksumMismatchError,
    ObjectNotRestoredError,
    SourceChangedError,
    VerificationError,
)

if TYPE_CHECKING:
    from backup_pipelines.core.config import Encryption, ObjectLockRetention
    from backup_pipelines.core.s3 import BackupS3Hook, S3Object

log = logging.getLogger(__name__)

GiB = 1024**3
MiB = 1024**2
MAX_SINGLE_COPY_BYTES = 5 * GiB
DEFAULT_PART_SIZE = 512 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
MAX_KEY_BYTES = 1024
_GONE = frozenset({"404", "NoSuchKey", "NotFound"})


def check_key_length(bucket: str, key: str) -> None:
    """S3 keys are at most 1,024 bytes of UTF-8; refuse a longer one before any request."""
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise VerificationError(
            f"s3://{bucket}/{key[:80]}... would be a {size}-byte key; S3 allows {MAX_KEY_BYTES} bytes"
        )


def is_full_sha256(value: str | None) -> bool:
    return bool(value) and "-" not in str(value)


def _kms(*headers: dict[str, Any]) -> bool:
    """SSE-KMS (and SSE-C) objects have ETags that are not MD5s of the content."""
    return any(h.get("ServerSideEncryption") == "aws:kms" or h.get("SSECustomerAlgorithm") for h in headers)


@dataclass(frozen=True, slots=True)
class Copied:
    """What one verified copy wrote, as S3 answered it."""

    etag: str
    sha256: str | None  # base64: full-object, or S3's composite ``<base64>-<parts>``
    multipart: bool
    verified_by: str

    @property
    def sha256_hex(self) -> str | None:
        return b64_to_hex(self.sha256) if self.sha256 and is_full_sha256(self.sha256) else None


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
        return b64_to_hex(self.sha256) if self.sha256 and is_full_sha256(self.sha256) else None


def copy_error(source: S3Object, dest_url: str, exc: ClientError) -> Exception:
    """The domain error of a refused copy, naming the object and S3's reason."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in ("PreconditionFailed", "412"):
        return SourceChangedError(
            f"{source.url} changed after it was listed (S3 refused the copy conditional on ETag "
            f"{source.etag}); nothing was written to {dest_url}"
        )
    if code in _GONE:
        return SourceChangedError(f"{source.url} disappeared after it was listed")
    if code in ("InvalidObjectState", "ObjectNotInActiveTierError"):
        return ObjectNotRestoredError(
            f"{source.url} is in a cold storage class (GLACIER / DEEP_ARCHIVE) and not restored; "
            "restore it, or move it to a readable class, then archive the day again"
        )
    return ArchiveCopyError(f"copy of {source.url} to {dest_url} failed: {code} {error.get('Message', '')}")


class VerifiedCopy:
    """Verified server-side copies through ``hook`` (thread-safe: no state of its own)."""

    def __init__(self, hook: BackupS3Hook) -> None:
        self.hook = hook
        self.client = hook.client

    # -- one request per object -----------------------------------------------------------------
    def copy_listed(
        self,
        source: S3Object,
        dest_bucket: str,
        dest_key: str,
        *,
        args: dict[str, Any],
        multipart_threshold: int = MAX_SINGLE_COPY_BYTES,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> Copied:
        """Copy ``source`` (as listed) to the destination and verify the copy from S3's answer.

        ``args`` are the write arguments (``BackupS3Hook.write_args``: encryption, storage class).
        Raises ``SourceChangedError``, ``ChecksumMismatchError``, ``ObjectNotRestoredError``,
        ``VerificationError`` (key too long) or ``ArchiveCopyError``, each naming the object.
        """
        check_key_length(dest_bucket, dest_key)
        dest_url = f"s3://{dest_bucket}/{dest_key}"
        try:
            if source.size > multipart_threshold:
                return self._multipart_copy(source, dest_bucket, dest_key, args=args, part_size=part_size)
            return self._single_copy(source, dest_bucket, dest_key, args)
        except ClientError as exc:
            raise copy_error(source, dest_url, exc) from None

    def _single_copy(self, source: S3Object, dest_bucket: str, dest_key: str, args: dict[str, Any]) -> Copied:
        response = self.client.copy_object(
            Bucket=dest_bucket,
            Key=dest_key,
            CopySource={"Bucket": source.bucket, "Key": source.key},
            CopySourceIfMatch=source.etag,
            MetadataDirective="COPY",
            ChecksumAlgorithm="SHA256",
            **args,
        )
        result = response.get("CopyObjectResult", {})
        etag, sha = str(result.get("ETag", "")), result.get("ChecksumSHA256")
        dest_url = f"s3://{dest_bucket}/{dest_key}"
        if not is_full_sha256(sha):  # the answer lacks it: ask S3 what it stored
            head = self.hook.head(dest_bucket, dest_key)
            if head is None:
                raise ChecksumMismatchError(f"{dest_url}: the copy of {source.url} is missing after the copy")
            etag, sha = str(head["ETag"]), head.get("ChecksumSHA256")
            if not is_full_sha256(sha):
                raise ChecksumMismatchError(f"{dest_url} (copy of {source.url}): S3 holds no SHA-256 for it")
        if parts_of(source.etag) == 1 and etag != source.etag and not _kms(args):
            self._recheck_source(source, dest_url, etag)
        return Copied(etag=etag, sha256=sha, multipart=False, verified_by="sha256")

    def _recheck_source(self, source: S3Object, dest_url: str, copy_etag: str) -> None:
        """The copy's ETag is not the listed one: the source changed, is KMS-encrypted, or the copy is bad."""
        head = self.hook.head(source.bucket, source.key)
        if head is None:
            raise SourceChangedError(
                f"{source.url} disappeared after it was listed; {dest_url} is not archived"
            )
        if head["ETag"] != source.etag or int(head["ContentLength"]) != source.size:
            raise SourceChangedError(
                f"{source.url} changed after it was listed (ETag {source.etag} -> {head['ETag']}); "
                f"the copy at {dest_url} is not archived"
            )
        if not _kms(head):
            raise ChecksumMismatchError(
                f"{dest_url} (copy of {source.url}) failed verification: "
                f"ETag {copy_etag} != source ETag {source.etag}"
            )

    def _source_head(self, source: S3Object) -> dict[str, Any]:
        src_head = self.hook.head(source.bucket, source.key)
        if src_head is None:
            raise SourceChangedError(f"{source.url} disappeared after it was listed")
        if src_head["ETag"] != source.etag or int(src_head["ContentLength"]) != source.size:
            raise SourceChangedError(
                f"{source.url} changed after it was listed (ETag {source.etag} -> {src_head['ETag']})"
            )
        return src_head

    def _multipart_copy(
        self, source: S3Object, dest_bucket: str, dest_key: str, *, args: dict[str, Any], part_size: int
    ) -> Copied:
        """``UploadPartCopy`` in the source's part size when known; aborted on any failure."""
        src_head = self._source_head(source)  # content type and metadata: a multipart upload has no COPY
        size = source.size
        chosen = self._source_part_size(source) or part_size
        chosen = max(chosen, MIN_PART_SIZE, -(-size // MAX_PARTS))
        upload = self.client.create_multipart_upload(
            Bucket=dest_bucket,
            Key=dest_key,
            ChecksumAlgorithm="SHA256",
            ContentType=src_head.get("ContentType", "application/octet-stream"),
            Metadata=src_head.get("Metadata", {}),
            **args,
        )
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            for number, start in enumerate(range(0, size, chosen), start=1):
                response = self.client.upload_part_copy(
                    Bucket=dest_bucket,
                    Key=dest_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": source.bucket, "Key": source.key},
                    CopySourceIfMatch=source.etag,
                    CopySourceRange=f"bytes={start}-{min(start + chosen, size) - 1}",
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
        except BaseException:  # a failure or the task being stopped: leave no upload behind
            self.client.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
            raise
        part_sums = [p["ChecksumSHA256"] for p in parts if "ChecksumSHA256" in p]
        expected = Copied(
            etag=multipart_etag([p["ETag"] for p in parts]),
            sha256=composite_sha256(part_sums) if len(part_sums) == len(parts) else None,
            multipart=True,
            verified_by="sha256-composite" if len(part_sums) == len(parts) else "size+etag",
        )
        dest = self.hook.head(dest_bucket, dest_key)  # the answer of a multipart copy holds no checksum
        return self.verify_head(
            source, f"s3://{dest_bucket}/{dest_key}", dest, expected, kms=_kms(src_head, args)
        )

    def _source_part_size(self, source: S3Object) -> int | None:
        """The part size the source was uploaded with, when it is multipart (HEAD of part 1)."""
        if parts_of(source.etag) <= 1:
            return None
        part = self.hook.head(source.bucket, source.key, PartNumber=1)
        return int(part["ContentLength"]) if part else None

    # -- verification from a HEAD ---------------------------------------------------------------
    def verify_head(
        self,
        source: S3Object,
        dest_url: str,
        dest: dict[str, Any] | None,
        expected: Copied | None,
        *,
        kms: bool = False,
    ) -> Copied:
        """Compare what S3 holds at the destination (a HEAD) with the source and the copy's answer."""
        if dest is None:
            raise ChecksumMismatchError(f"{dest_url}: the copy of {source.url} is missing after the copy")
        etag, dest_sha = str(dest["ETag"]), dest.get("ChecksumSHA256")
        multipart = parts_of(etag) > 1
        problems = (
            []
            if int(dest["ContentLength"]) == source.size
            else [f"size {dest['ContentLength']} != source size {source.size}"]
        )
        if multipart:
            verified_by = "sha256-composite" if dest_sha else "size+etag"
            if expected is not None:
                verified_by = expected.verified_by
                if etag != expected.etag:
                    problems.append(f"ETag {etag} != {expected.etag} assembled from the copied parts")
                if expected.sha256 and dest_sha and dest_sha.split("-")[0] != expected.sha256.split("-")[0]:
                    problems.append(f"composite SHA-256 {dest_sha} != {expected.sha256}")
        else:
            verified_by = "sha256"
            if not is_full_sha256(dest_sha):
                problems.append("S3 holds no SHA-256 for the copy")
            elif expected is not None and is_full_sha256(expected.sha256) and dest_sha != expected.sha256:
                problems.append(f"SHA-256 {dest_sha} != {expected.sha256} computed by S3 during the copy")
        if parts_of(source.etag) == parts_of(etag) and not (kms or _kms(dest)) and etag != source.etag:
            problems.append(f"ETag {etag} != source ETag {source.etag}")
        if problems:
            raise ChecksumMismatchError(
                f"{dest_url} (copy of {source.url}) failed verification: " + "; ".join(problems)
            )
        sha = dest_sha or (expected.sha256 if expected is not None else None)
        return Copied(etag=etag, sha256=sha, multipart=multipart, verified_by=verified_by)

    # -- the one-object form --------------------------------------------------------------------
    def copy(
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

        A destination holding the same content (same size and ETag, not KMS-encrypted, with S3's
        SHA-256) is not copied again. Retention is put after the verified copy (PutObjectRetention).
        """
        when = now or clock.utcnow()
        dest_url = f"s3://{dest_bucket}/{dest_key}"
        existing = self.hook.head(dest_bucket, dest_key)
        if existing is not None and self.same_content(existing, source):
            checked = self.verify_head(source, dest_url, existing, None)
            if not existing.get("ObjectLockRetainUntilDate"):
                self.hook.retain(dest_bucket, dest_key, object_lock, when)
            return self._result(source, dest_bucket, dest_key, existing, checked, copied=False)
        args = self.hook.write_args(
            dest_bucket, encryption=encryption, storage_class=storage_class, object_lock=None, now=when
        )
        copied = self.copy_listed(
            source,
            dest_bucket,
            dest_key,
            args=args,
            multipart_threshold=multipart_threshold,
            part_size=part_size,
        )
        dest = self.hook.head(dest_bucket, dest_key)
        checked = self.verify_head(source, dest_url, dest, copied, kms=_kms(args))
        self.hook.retain(dest_bucket, dest_key, object_lock, when)
        assert dest is not None
        return self._result(source, dest_bucket, dest_key, dest, checked, copied=True)

    @staticmethod
    def same_content(dest_head: dict[str, Any], source: S3Object) -> bool:
        """The destination holds the source's bytes: same size and (MD5-based) ETag, and a SHA-256."""
        return (
            int(dest_head.get("ContentLength", -1)) == source.size
            and dest_head.get("ETag") == source.etag
            and not _kms(dest_head)
            and bool(dest_head.get("ChecksumSHA256"))
        )

    @staticmethod
    def _result(
        source: S3Object, bucket: str, key: str, dest: dict[str, Any], checked: Copied, *, copied: bool
    ) -> CopyResult:
        return CopyResult(
            source=source,
            bucket=bucket,
            key=key,
            size=source.size,
            etag=checked.etag,
            sha256=checked.sha256,
            storage_class=dest.get("StorageClass", "STANDARD"),
            copied=copied,
            multipart=checked.multipart,
            verified_by=checked.verified_by,
        )
