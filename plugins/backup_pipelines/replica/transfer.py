"""One object from the primary region to the DR region, checked in the replica.

- **Same endpoint** (real AWS: one S3 API reaches every region): ``CopyObject`` server-side
  (``BackupS3Hook.copy_verified``): the bytes never pass through the worker, S3 copies across
  regions itself.
- **Two endpoints** (two S3 services that cannot reach each other, as the embedded stack's two
  moto servers): the object is streamed (GET from the primary, hashed on the way to a spool file,
  PUT to the replica with its SHA-256, which S3 checks on receipt; multipart above
  ``multipart_threshold`` with S3's composite checksum checked after).

Either way the replica is checked from its own ``HeadObject``: size, and its SHA-256 against the
manifest's (when the manifest has one) or the primary's. An object already in the replica with the
same size and checksum is not copied again (a catch-up after an outage copies no duplicate). A
cold object (GLACIER, DEEP_ARCHIVE) not yet restored gets a restore request and is reported as
thawing: the point is copied by a later run.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from backup_pipelines.core.checksums import b64_to_hex, composite_sha256_of_file, hex_to_b64
from backup_pipelines.core.errors import ChecksumMismatchError, ReplicaError
from backup_pipelines.core.s3 import STREAM_CHUNK, S3Object, error_code

if TYPE_CHECKING:
    from backup_pipelines.core.config.common import ReplicaStorage
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

SPOOL_IN_MEMORY = 16 * 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 512 * 1024 * 1024
Outcome = Literal["copied", "present", "thawing", "pending"]


@dataclass(frozen=True)
class ReplicaObject:
    """One object in the replica, checked: its key, size, SHA-256 (hex) and class there."""

    key: str
    size: int
    sha256: str | None
    storage_class: str
    outcome: Outcome


def endpoint_of(hook: BackupS3Hook) -> str | None:
    config = hook.conn_config
    return config.endpoint_url if config else None


class RegionTransfer:
    """Copies objects from the primary region's buckets to the DR region's, each checked there."""

    def __init__(
        self,
        primary: BackupS3Hook,
        dr: BackupS3Hook,
        replica: ReplicaStorage,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        copy: bool = True,
    ) -> None:
        self.primary = primary
        self.copy = copy
        self.dr = dr
        self.replica = replica
        self.multipart_threshold = multipart_threshold
        self.server_side = endpoint_of(primary) == endpoint_of(dr)

    def transfer(
        self,
        source: S3Object,
        dest_bucket: str,
        *,
        expected_sha256: str | None,
        body: bytes | None = None,
    ) -> ReplicaObject:
        """Copy ``source`` to ``dest_bucket`` (same key) unless already there, and check the replica.

        ``expected_sha256`` (hex) is the manifest's checksum of the object; ``body`` replaces the
        object's bytes (a ClickHouse ``.backup`` whose base URL names the replica's base).
        """
        want = hashlib.sha256(body).hexdigest() if body is not None else expected_sha256
        size = len(body) if body is not None else source.size
        storage_class = self.replica.storage_class_for(source.storage_class)
        head = self.dr.head(dest_bucket, source.key)
        if head is not None and not self._problems(head, source, size, want, exact_etag=body is None):
            return self._result(source.key, head, want, "present")
        if body is None and not self.copy:
            return self._replicated_by_s3(source, dest_bucket, head, want)
        if body is None and self._thawing(source):
            return ReplicaObject(source.key, source.size, None, source.storage_class, "thawing")
        if body is not None:
            self._put(dest_bucket, source.key, body, storage_class)
        elif self.server_side:
            result = self.dr.copy_verified(
                source,
                dest_bucket,
                source.key,
                encryption=self.replica.encryption,
                storage_class=storage_class,
            )
            if want is not None and result.sha256_hex not in (None, want):
                raise ChecksumMismatchError(
                    f"replica s3://{dest_bucket}/{source.key}: SHA-256 {result.sha256_hex} != {want} "
                    f"in the manifest of {source.url}"
                )
            if want is None and result.sha256_hex is None:  # a multipart copy VerifiedCopy checked
                return ReplicaObject(source.key, result.size, None, result.storage_class, "copied")
            want = want or result.sha256_hex
        else:
            want = self._stream(source, dest_bucket, storage_class, expected_sha256)
        head = self.dr.head(dest_bucket, source.key)
        if head is None:
            raise ReplicaError(f"s3://{dest_bucket}/{source.key} is not in the replica after its copy")
        problems = self._problems(head, source, size, want, exact_etag=False, copied=True)
        if problems:
            raise ChecksumMismatchError(
                f"replica s3://{dest_bucket}/{source.key} (of {source.url}): {'; '.join(problems)}"
            )
        return self._result(source.key, head, want, "copied")

    def _replicated_by_s3(
        self, source: S3Object, bucket: str, head: dict[str, Any] | None, want: str | None
    ) -> ReplicaObject:
        """``mode: s3_replication``: S3 copies; check the source's ``ReplicationStatus`` (real S3
        sets it; moto never does) and the replica's checksum, which ``transfer`` already compared."""
        status = (self.primary.head(source.bucket, source.key) or {}).get("ReplicationStatus")
        if status == "FAILED":
            raise ReplicaError(f"S3 Replication of {source.url} to s3://{bucket} FAILED (ReplicationStatus)")
        if head is None or status == "PENDING":
            return ReplicaObject(source.key, source.size, None, source.storage_class, "pending")
        problems = self._problems(head, source, source.size, want, exact_etag=True)
        raise ChecksumMismatchError(
            f"replica s3://{bucket}/{source.key} (replicated from {source.url}, status "
            f"{status or 'unknown'}) does not match it: {'; '.join(problems)}"
        )

    @staticmethod
    def _result(key: str, head: dict[str, Any], want: str | None, outcome: Outcome) -> ReplicaObject:
        stored = head.get("ChecksumSHA256")
        sha = want or (b64_to_hex(stored) if stored and "-" not in stored else None)
        return ReplicaObject(
            key, int(head["ContentLength"]), sha, head.get("StorageClass", "STANDARD"), outcome
        )

    @staticmethod
    def _problems(
        head: dict[str, Any],
        source: S3Object,
        size: int,
        want: str | None,
        *,
        exact_etag: bool,
        copied: bool = False,
    ) -> list[str]:
        """Why the replica object does not hold the source's bytes ([] when it does).

        Its SHA-256 (S3's own, from the HEAD) must equal ``want``; with no checksum to compare (a
        ClickHouse part has none in its manifest) an unencrypted-by-KMS single-part replica must
        carry the source's ETag (the MD5 of the content). A multipart replica carries S3's
        composite checksum only: checked against the bytes just after its upload (``copied``)."""
        problems = []
        found = int(head.get("ContentLength", -1))
        if found != size:
            problems.append(f"size {found} != {size}")
        stored = str(head.get("ChecksumSHA256") or "")
        kms = head.get("ServerSideEncryption") == "aws:kms"
        if want is not None and stored and "-" not in stored:
            if b64_to_hex(stored) != want:
                problems.append(f"SHA-256 {b64_to_hex(stored)} != {want}")
        elif want is not None and stored and copied:
            pass  # composite: compared with the bytes by ``_upload``
        elif want is not None:
            problems.append("S3 holds no full-object SHA-256 for it")
        elif not exact_etag or kms or "-" in source.etag or head.get("ETag") != source.etag:
            problems.append(f"no checksum in the manifest and ETag {head.get('ETag')} != {source.etag}")
        return problems

    # -- copies ---------------------------------------------------------------------------------
    def _put(self, bucket: str, key: str, body: bytes, storage_class: str) -> None:
        self.dr.put_encrypted(
            bucket, key, body, encryption=self.replica.encryption, storage_class=storage_class
        )

    def _thawing(self, source: S3Object) -> bool:
        """A cold object must be restored before a GET: request it; True while it is not readable."""
        if self.primary.restore_status(source.bucket, source.key).readable:
            return False
        status = self.primary.request_restore(
            source.bucket, source.key, days=self.replica.restore_days, tier=self.replica.restore_tier
        )
        return not status.readable  # moto restores at once; real S3 takes hours

    def _stream(self, source: S3Object, bucket: str, storage_class: str, expected: str | None) -> str:
        """GET from the primary into a spool file while hashing it, then PUT it to the replica."""
        try:
            response = self.primary.client.get_object(Bucket=source.bucket, Key=source.key)
        except ClientError as exc:
            raise ReplicaError(f"could not read {source.url} for its replica: {error_code(exc)}") from None
        digest = hashlib.sha256()
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in response["Body"].iter_chunks(STREAM_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
            sha = digest.hexdigest()
            if spool.tell() != source.size or (expected is not None and sha != expected):
                raise ChecksumMismatchError(
                    f"{source.url} read back as {spool.tell()} bytes with SHA-256 {sha}; its manifest says "
                    f"{source.size} bytes, {expected}: the primary copy is damaged, nothing was copied"
                )
            spool.seek(0)
            self._upload(spool, bucket, source, storage_class, sha)
        return sha

    def _upload(self, spool: IO[bytes], bucket: str, source: S3Object, storage_class: str, sha: str) -> None:
        args: dict[str, Any] = {"StorageClass": storage_class, **self.replica.encryption.s3_extra_args()}
        if source.size <= self.multipart_threshold:
            self.dr.client.put_object(
                Bucket=bucket,
                Key=source.key,
                Body=spool,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=hex_to_b64(sha),
                **args,
            )
            return
        from boto3.s3.transfer import TransferConfig

        part = self.multipart_threshold
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, use_threads=False)
        with tempfile.NamedTemporaryFile() as path:
            spool.seek(0)
            while chunk := spool.read(STREAM_CHUNK):
                path.write(chunk)
            path.flush()
            self.dr.client.upload_file(
                path.name,
                bucket,
                source.key,
                ExtraArgs={**args, "ChecksumAlgorithm": "SHA256"},
                Config=config,
            )
            head = self.dr.head(bucket, source.key) or {}
            expected = composite_sha256_of_file(path.name, part)
            if str(head.get("ChecksumSHA256", "")).split("-")[0] != expected.split("-")[0]:
                raise ChecksumMismatchError(
                    f"replica s3://{bucket}/{source.key}: composite SHA-256 {head.get('ChecksumSHA256')} "
                    f"!= {expected} of the bytes read from {source.url}"
                )
