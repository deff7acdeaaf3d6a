"""BackupS3Hook against in-process moto: verified copies, checksums, encryption, Object Lock, restores."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backup_pipelines.core.checksums import multipart_etag
from backup_pipelines.core.config import Encryption, ObjectLockRetention
from backup_pipelines.core.errors import (
    ChecksumMismatchError,
    ObjectNotRestoredError,
    SourceChangedError,
    VerificationError,
)
from backup_pipelines.core.s3 import BackupS3Hook, decode_metadata
from backup_pipelines.core.s3_copy import MiB, VerifiedCopy

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
    hook.client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="application/x-parquet",
        Metadata={"writer": "spark 3.5"},
    )
    return next(o for o in hook.list_objects(bucket, key) if o.key == key)


def _count_calls(hook: BackupS3Hook) -> list[str]:
    calls: list[str] = []
    hook.client.meta.events.register("after-call.s3", lambda model, **_: calls.append(model.name))
    return calls


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
    # The source's own metadata is kept; where the copy came from is the manifest's business.
    assert head["Metadata"] == {"writer": "spark 3.5"}
    assert hook.bytes_read == 0


ODD_KEYS = [
    "country=Côte d'Ivoire/part-0.parquet",
    "日本語/ファイル 1.parquet",
    "a=1/b=2/x+y%20z?&~=.parquet",
    "emoji 🚀/part",
    "empty",
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_copy_listed_is_one_request_for_any_key(hook: BackupS3Hook, key: str) -> None:
    data = b"" if key == "empty" else key.encode() * 10
    src = _put(hook, key, data)
    calls = _count_calls(hook)

    copied = VerifiedCopy(hook).copy_listed(src, "dst", "emr/" + key, args={"StorageClass": "STANDARD"})

    assert calls == ["CopyObject"]
    assert copied.sha256_hex == hashlib.sha256(data).hexdigest()
    assert hook.client.get_object(Bucket="dst", Key="emr/" + key)["Body"].read() == data
    assert [o.key for o in hook.list_objects("dst", "emr/")] == ["emr/" + key]


def test_a_key_longer_than_s3_allows_is_refused_before_any_request(hook: BackupS3Hook) -> None:
    key = "é" * 511 + "ab"  # 1,024 bytes: the longest key S3 takes
    src = _put(hook, key, b"x")
    calls = _count_calls(hook)
    VerifiedCopy(hook).copy_listed(src, "dst", key, args={})
    assert calls == ["CopyObject"]
    with pytest.raises(VerificationError, match="would be a 1028-byte key; S3 allows 1024 bytes"):
        VerifiedCopy(hook).copy_listed(src, "dst", "emr/" + key, args={})
    assert calls == ["CopyObject"]


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "refused"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "CopyObject",
    )


def test_s3_refusing_the_conditional_copy_is_a_changed_source(
    hook: BackupS3Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real S3 answers 412 to a copy whose CopySourceIfMatch no longer matches (moto ignores it)."""
    src = _put(hook, "a", b"listed")
    seen: dict[str, Any] = {}

    def refuse(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _client_error("PreconditionFailed", 412)

    monkeypatch.setattr(hook.client, "copy_object", refuse)
    with pytest.raises(
        SourceChangedError, match=r"s3://src/a changed after it was listed \(S3 refused the copy"
    ):
        hook.copy_verified(src, "dst", "a", encryption=Encryption())
    assert seen["CopySourceIfMatch"] == src.etag
    assert hook.head("dst", "a") is None


def _edit_copy_answer(hook: BackupS3Hook, monkeypatch: pytest.MonkeyPatch, edit: Any) -> None:
    """Copies really happen; only S3's answer (``CopyObjectResult``) is changed by ``edit``."""
    real_copy = hook.client.copy_object

    def copy(**kwargs: Any) -> Any:
        response = real_copy(**kwargs)
        edit(response["CopyObjectResult"])
        return response

    monkeypatch.setattr(hook.client, "copy_object", copy)


def test_a_copy_whose_etag_is_not_the_sources_is_rechecked(
    hook: BackupS3Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _put(hook, "a", b"listed")
    _edit_copy_answer(hook, monkeypatch, lambda answer: answer.update(ETag='"0000"'))
    with pytest.raises(
        ChecksumMismatchError, match=r"s3://dst/a \(copy of s3://src/a\) failed verification: ETag"
    ):
        VerifiedCopy(hook).copy_listed(src, "dst", "a", args={})
    # A KMS-encrypted source has no MD5 ETag: the source's HEAD says so and the copy stands.
    real_head = hook.head
    monkeypatch.setattr(
        hook, "head", lambda b, k, **kw: {**(real_head(b, k, **kw) or {}), "ServerSideEncryption": "aws:kms"}
    )
    copied = VerifiedCopy(hook).copy_listed(src, "dst", "a", args={})
    assert copied.sha256 == _b64sha(b"listed")


def test_a_copy_answer_without_sha256_is_read_back_with_one_head(
    hook: BackupS3Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _put(hook, "a", b"rows")
    _edit_copy_answer(hook, monkeypatch, lambda answer: answer.pop("ChecksumSHA256"))
    calls = _count_calls(hook)
    copied = VerifiedCopy(hook).copy_listed(src, "dst", "a", args={})
    assert calls == ["CopyObject", "HeadObject"]
    assert copied.sha256 == _b64sha(b"rows")


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
    """moto ignores CopySourceIfMatch and copies the new version: the copy's ETag gives it away."""
    src = _put(hook, "a", b"listed")
    _put(hook, "a", b"rewritten")
    with pytest.raises(SourceChangedError, match=r"s3://src/a changed after it was listed \(ETag"):
        hook.copy_verified(src, "dst", "a", encryption=Encryption())


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


def test_a_failed_multipart_copy_is_aborted(hook: BackupS3Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    hook.client.put_object(Bucket="src", Key="big", Body=b"b" * (11 * MiB))
    src = hook.list_objects("src", "big")[0]
    real_part = hook.client.upload_part_copy

    def fail_second_part(**kwargs: Any) -> Any:
        if kwargs["PartNumber"] == 2:
            raise _client_error("InternalError", 500)
        return real_part(**kwargs)

    monkeypatch.setattr(hook.client, "upload_part_copy", fail_second_part)
    with pytest.raises(Exception, match="copy of s3://src/big to s3://dst/big failed: InternalError"):
        VerifiedCopy(hook).copy_listed(
            src, "dst", "big", args={}, multipart_threshold=6 * MiB, part_size=5 * MiB
        )
    assert hook.client.list_multipart_uploads(Bucket="dst").get("Uploads", []) == []
    assert hook.head("dst", "big") is None


def test_metadata_of_any_text_is_stored_ascii_and_read_back(hook: BackupS3Hook) -> None:
    value = "s3://src/country=Côte d'Ivoire/日本 100%"
    hook.put_encrypted("dst", "m", b"x", encryption=Encryption(), metadata={"source": value, "rows": "12"})
    stored = hook.client.head_object(Bucket="dst", Key="m")["Metadata"]
    assert stored["rows"] == "12" and stored["source"].isascii()
    assert decode_metadata(stored) == {"source": value, "rows": "12"}


def test_delete_keys_sends_1000_keys_a_request(hook: BackupS3Hook) -> None:
    keys = [f"k/{n:04d}" for n in range(2001)]
    for key in keys:
        hook.client.put_object(Bucket="dst", Key=key, Body=b"")
    sizes: list[int] = []
    hook.client.meta.events.register(
        "provide-client-params.s3.DeleteObjects",
        lambda params, **_: sizes.append(len(params["Delete"]["Objects"])),
    )
    assert hook.delete_keys("dst", iter(keys)) == 2001
    assert sizes == [1000, 1000, 1]
    assert hook.list_objects("dst", "k/") == []


def test_hooks_of_one_process_share_the_service_model_they_have_read(moto_s3: Any) -> None:
    """The second hook's client is built without reading botocore's JSON again, and works."""
    first, second = BackupS3Hook(aws_conn_id="aws_unit"), BackupS3Hook(aws_conn_id="aws_unit")
    loaders = {id(h.get_session()._session.get_component("data_loader")) for h in (first, second)}
    assert len(loaders) == 1
    first.client.create_bucket(Bucket="shared-loader")
    assert [b["Name"] for b in second.client.list_buckets()["Buckets"]] == ["shared-loader"]
