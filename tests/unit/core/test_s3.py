"""BackupS3Hook against in-process moto: verified copies, checksums, encryption, Object Lock, restores."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.core.checksums import multipart_etag
from backup_pipelines.core.config import Encryption, ObjectLockRetention
from backup_pipelines.core.errors import ChecksumMismatchError, ObjectNotRestoredError, SourceChangedError
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.core.s3_copy import MiB

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def hook(moto_s3: Any) -> BackupS3Hook:
    h = BackupS3Hook(aws_conn_id=None, region_name="us-east-1")
    for bucket in ("src", "dst"):
        h.client.create_bucket(Bucket=bucket)
    h.client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    return h


def _put(hook: BackupS3Hook, key: str, data: bytes, bucket: str = "src") -> Any:
    hook.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-parquet")
    return next(o for o in hook.list_objects(bucket, key) if o.key == key)


def test_copy_is_server_side_verified_and_encrypted(hook: BackupS3Hook) -> None:
    data = b"parquet-bytes" * 1000
    src = _put(hook, "job/dt=2026-03-01/part-0.parquet", data)

    result = hook.copy_verified(src, "dst", "emr/job/dt=2026-03-01/part-0.parquet", encryption=Encryption())

    assert result.copied and result.verified_by == "sha256"
    assert result.sha256 == _b64sha(data)
    assert result.sha256_hex == hashlib.sha256(data).hexdigest()
    head = hook.client.head_object(Bucket="dst", Key=result.key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/x-parquet"
    assert head["Metadata"]["bp-source"] == f"s3://src/{src.key}"
    assert hook.bytes_read == 0


def test_second_copy_of_the_same_version_is_skipped(hook: BackupS3Hook) -> None:
    src = _put(hook, "a", b"x" * 100)
    hook.copy_verified(src, "dst", "a", encryption=Encryption())
    again = hook.copy_verified(src, "dst", "a", encryption=Encryption())
    assert not again.copied
    assert again.sha256 == _b64sha(b"x" * 100)


def test_a_changed_source_is_copied_again(hook: BackupS3Hook) -> None:
    hook.copy_verified(_put(hook, "a", b"old"), "dst", "a", encryption=Encryption())
    result = hook.copy_verified(_put(hook, "a", b"new!"), "dst", "a", encryption=Encryption())
    assert result.copied and result.size == 4


def test_copy_changed_between_copy_and_verify_is_a_mismatch(hook: BackupS3Hook) -> None:
    src = _put(hook, "a", b"good bytes")
    real_copy = hook.client.copy_object

    def copy_then_corrupt(**kwargs: Any) -> Any:
        response = real_copy(**kwargs)
        hook.client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=b"evil bytes")
        return response

    hook.client.copy_object = copy_then_corrupt
    with pytest.raises(ChecksumMismatchError, match=r"s3://dst/a \(copy of s3://src/a\) failed verification"):
        hook.copy_verified(src, "dst", "a", encryption=Encryption())


def test_source_rewritten_after_listing_is_refused(hook: BackupS3Hook) -> None:
    src = _put(hook, "a", b"listed")
    _put(hook, "a", b"rewritten")
    with pytest.raises(SourceChangedError, match="s3://src/a changed after it was listed"):
        hook.copy_verified(src, "dst", "a", encryption=Encryption())
    assert hook.head("dst", "a") is None


def test_multipart_copy_above_threshold_keeps_the_source_part_layout(hook: BackupS3Hook) -> None:
    part = b"p" * (5 * MiB)
    upload = hook.client.create_multipart_upload(Bucket="src", Key="big")
    etags = []
    for n, chunk in enumerate((part, part, b"tail"), start=1):
        r = hook.client.upload_part(
            Bucket="src", Key="big", UploadId=upload["UploadId"], PartNumber=n, Body=chunk
        )
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    hook.client.complete_multipart_upload(
        Bucket="src", Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
    )
    src = hook.list_objects("src", "big")[0]

    result = hook.copy_verified(
        src, "dst", "big", encryption=Encryption(), multipart_threshold=6 * MiB, part_size=8 * MiB
    )

    assert result.multipart and result.copied
    assert result.etag == src.etag == multipart_etag([e["ETag"] for e in etags])
    assert result.size == 10 * MiB + 4
    assert hook.bytes_read == 0
    assert hook.client.head_object(Bucket="dst", Key="big")["ServerSideEncryption"] == "AES256"


def test_object_lock_retention_only_where_the_bucket_has_object_lock(hook: BackupS3Hook) -> None:
    src = _put(hook, "a", b"keep me")
    lock = ObjectLockRetention(mode="GOVERNANCE", days=30)
    hook.copy_verified(src, "locked", "a", encryption=Encryption(), object_lock=lock, now=NOW)
    hook.copy_verified(src, "dst", "a", encryption=Encryption(), object_lock=lock, now=NOW)

    locked = hook.client.head_object(Bucket="locked", Key="a")
    assert locked["ObjectLockMode"] == "GOVERNANCE"
    assert locked["ObjectLockRetainUntilDate"].date().isoformat() == "2026-03-31"
    assert "ObjectLockMode" not in hook.client.head_object(Bucket="dst", Key="a")


def test_put_encrypted_stores_sha256_storage_class_and_kms(hook: BackupS3Hook) -> None:
    kms = Encryption(mode="SSE-KMS", kms_key_id="alias/backups")
    hook.put_encrypted("dst", "k", b"data", encryption=kms, storage_class="GLACIER_IR")
    head = hook.client.head_object(Bucket="dst", Key="k", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["StorageClass"] == "GLACIER_IR"
    assert head["ChecksumSHA256"] == _b64sha(b"data")


def test_object_sha256_uses_s3_checksum_or_streams(hook: BackupS3Hook) -> None:
    hook.put_encrypted("dst", "with", b"abc", encryption=Encryption())
    _put(hook, "without", b"abcdef", bucket="dst")
    assert hook.object_sha256("dst", "with") == _b64sha(b"abc")
    assert hook.bytes_read == 0
    assert hook.object_sha256("dst", "without") == _b64sha(b"abcdef")
    assert hook.bytes_read == 6


def test_restore_of_cold_objects(hook: BackupS3Hook) -> None:
    hook.put_encrypted("dst", "cold", b"frozen", encryption=Encryption(), storage_class="DEEP_ARCHIVE")
    hook.put_encrypted("dst", "warm", b"warm", encryption=Encryption(), storage_class="GLACIER_IR")

    assert hook.restore_status("dst", "warm").state == "not_needed"
    assert hook.restore_status("dst", "cold").state == "not_requested"
    with pytest.raises(ObjectNotRestoredError, match="s3://dst/cold is in a cold storage class"):
        hook.stream_sha256("dst", "cold")

    status = hook.request_restore("dst", "cold", days=2, tier="Bulk")
    assert status.readable and status.state == "restored" and status.expiry  # moto: immediate
    assert hook.request_restore("dst", "cold").state == "restored"  # repeat is a no-op
    assert hook.stream_sha256("dst", "cold") == _b64sha(b"frozen")
