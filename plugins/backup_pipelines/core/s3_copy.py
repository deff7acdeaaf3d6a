"""Verified server-side copies: the data never passes through the worker, only headers do.

``CopyObject`` (``UploadPartCopy`` above the multipart threshold, 5 GiB by default, which is S3's
single-copy limit), conditional on the listed source ETag, asking S3 for a SHA-256
(``ChecksumAlgorithm="SHA256"``) and reading it back (``ChecksumMode="ENABLED"``). Single-part
objects get a full-object SHA-256; multipart copies get S3's composite checksum (``<base64>-<parts>``)
when S3 returns part checksums, and are otherwise verified by size + multipart ETag, which equals
the source's ETag when the part sizes match (the copy uses the source's own part size when it can
tell it). A destination that already holds the same source version (same source ETag and size,
recorded in its metadata) is not copied again.

moto (the embedded stack's S3) returns no part checksums for ``UploadPartCopy``, so multipart
copies are verified by size + ETag there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backup_pipelines.core import clock
from backup_pipelines.core.checksums import b64_to_hex, composite_sha256, multipart_etag, parts_of
from backup_pipelines.core.errors import ChecksumMismatchError, SourceChangedError

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
META_SOURCE_ETAG = "bp-source-etag"
META_SOURCE_SIZE = "bp-source-size"
META_SOURCE = "bp-source"


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


class VerifiedCopy:
    """One verified server-side copy through ``hook`` (thread-safe: no state of its own)."""

    def __init__(self, hook: BackupS3Hook) -> None:
        self.hook = hook
        self.client = hook.client

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

        ``source`` is what the listing saw: the copy is conditional on its ETag, so an object
        rewritten since the listing fails with ``SourceChangedError`` instead of archiving a
        version nobody listed. A verification mismatch raises ``ChecksumMismatchError``.
        """
        src_head = self._source_head(source)
        existing = self.hook.head(dest_bucket, dest_key)
        when = now or clock.utcnow()
        if existing is not None and self._same_version(existing, source):
            result = self._check_copy(source, src_head, dest_bucket, dest_key, expected=None, copied=False)
            if not existing.get("ObjectLockRetainUntilDate"):
                self.hook.retain(dest_bucket, dest_key, object_lock, when)
            return result

        # Retention is set after the verified copy (PutObjectRetention): CopyObject has no body to
        # checksum, and some S3 implementations refuse lock headers on it.
        args = self.hook.write_args(
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
            expected = self._single_copy(source, dest_bucket, dest_key, common)
        result = self._check_copy(source, src_head, dest_bucket, dest_key, expected=expected, copied=True)
        self.hook.retain(dest_bucket, dest_key, object_lock, when)
        return result

    def _source_head(self, source: S3Object) -> dict[str, Any]:
        """The source as it is now; ``SourceChangedError`` when it is not what the listing saw."""
        src_head = self.hook.head(source.bucket, source.key)
        if src_head is None:
            raise SourceChangedError(f"{source.url} disappeared after it was listed")
        if src_head["ETag"] != source.etag or int(src_head["ContentLength"]) != source.size:
            raise SourceChangedError(
                f"{source.url} changed after it was listed (ETag {source.etag} -> {src_head['ETag']})"
            )
        return src_head

    def _single_copy(
        self, source: S3Object, dest_bucket: str, dest_key: str, common: dict[str, Any]
    ) -> dict[str, Any]:
        """One ``CopyObject``; returns what S3 says it wrote (SHA-256 and ETag of the copy)."""
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
        return {"sha256": result.get("ChecksumSHA256"), "etag": result.get("ETag")}

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
        part = self.hook.head(source.bucket, source.key, PartNumber=1)
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
        dest = self.hook.head(dest_bucket, dest_key)
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
