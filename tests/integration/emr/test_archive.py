"""The EMR archive service against the embedded stack (moto S3 server over HTTP): any key S3 allows,
one request per object, unchanged re-runs, bad objects that do not stop the others, lifecycle."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.emr import Requests, odd_day, seed, sha256

pytestmark = pytest.mark.integration

BUCKET = "emr-output-int"
ARCHIVE = "analytics-archive"
INTERVAL = (datetime(2026, 5, 1, 3, tzinfo=UTC), datetime(2026, 5, 2, 3, tzinfo=UTC))


@pytest.fixture
def emr(embedded_stack: Any, example_config: dict[str, Any], write_config: Any) -> Any:
    """A service on one hook whose S3 requests are counted, for jobs ``oddkeys``, ``badday``, ``tamper``."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.emr.archive import EmrArchiveService

    embedded_stack.create_buckets(BUCKET)
    example_config["emr_archive"]["jobs"] = [
        {"name": name, "source": f"s3://{BUCKET}/{name}/dt={{{{ ds }}}}/"}
        for name in ("oddkeys", "badday", "tamper")
    ]
    write_config(example_config)
    cfg = load_config()
    hook = BackupS3Hook(aws_conn_id="aws_default")
    service = EmrArchiveService(cfg, hook, Catalog.from_config(cfg, s3=hook))
    service.requests = Requests(hook.client)  # type: ignore[attr-defined]
    return service


def _archive(emr: Any, job: str, day: str) -> Any:
    return emr.archive(
        job, day=day, source_url=f"s3://{BUCKET}/{job}/dt={day}/", interval=INTERVAL, run_id=f"test__{job}"
    )


def _manifest_object(s3: Any, job: str, day: str) -> tuple[bytes, str]:
    got = s3.get_object(Bucket="analytics-backups", Key=f"catalog/emr_output/{job}/dt={day}.json")
    return got["Body"].read(), got["ETag"]


def test_every_key_s3_allows_archives_byte_identical_with_one_request_each(emr: Any, s3: Any) -> None:
    day, prefix, dest = "2026-05-01", "oddkeys/dt=2026-05-01/", "emr/oddkeys/dt=2026-05-01/"
    objects = odd_day(dest)
    seed(s3, BUCKET, prefix, objects)
    emr.requests.take()

    summary = _archive(emr, "oddkeys", day)

    assert (summary.objects, summary.copied, summary.manifest) == (len(objects), len(objects), "written")
    # One CopyObject per object; two listings (the source, and the verifying one of the archive),
    # the GET that finds no previous manifest, then the catalog's write: the object list's PUT, the
    # manifest's PUT, the index's GET and PUT, and (the dataset's first point) the index built on
    # first use: one listing of the catalog folder and the GET of the new manifest. No HEAD at all.
    assert emr.requests.take() == Counter(
        {"CopyObject": len(objects), "ListObjectsV2": 3, "GetObject": 3, "PutObject": 3}
    )
    manifest = emr.catalog.read("emr_output", "oddkeys", f"dt={day}")
    assert manifest.is_verified and manifest.details["source"] == f"s3://{BUCKET}/{prefix}"
    by_key = {o.key: o for o in manifest.objects}
    assert sorted(by_key) == sorted(dest + name for name in objects)
    assert max(len(k.encode()) for k in by_key) == 1024
    for name, body in objects.items():
        copy = s3.get_object(Bucket=ARCHIVE, Key=dest + name)
        assert copy["Body"].read() == body, name
        assert by_key[dest + name].sha256 == sha256(body) and by_key[dest + name].size == len(body)
    assert copy["ServerSideEncryption"] == "AES256"

    # An unchanged day: listings and the manifest's GETs only (the manifest and its object list);
    # the manifest is left byte for byte.
    before = _manifest_object(s3, "oddkeys", day)
    emr.requests.take()
    again = _archive(emr, "oddkeys", day)
    assert (again.copied, again.skipped, again.manifest) == (0, len(objects), "unchanged")
    assert emr.requests.take() == Counter({"ListObjectsV2": 2, "GetObject": 2})
    assert _manifest_object(s3, "oddkeys", day) == before

    # A changed day: only the new and the changed object are copied; the point is as fresh as its data.
    s3.put_object(Bucket=BUCKET, Key=prefix + "日本語/売上 データ.parquet", Body=b"rewritten by a re-run")
    s3.put_object(Bucket=BUCKET, Key=prefix + "late/part-new", Body=b"new")
    emr.requests.take()
    changed = _archive(emr, "oddkeys", day)
    assert (changed.copied, changed.objects, changed.manifest) == (2, len(objects) + 1, "written")
    assert emr.requests.take()["CopyObject"] == 2
    newer = emr.catalog.read("emr_output", "oddkeys", f"dt={day}")
    assert newer.captured_at > manifest.captured_at
    entry = next(o for o in newer.objects if o.key == dest + "日本語/売上 データ.parquet")
    assert entry.sha256 == sha256(b"rewritten by a re-run")

    # A source deleted after its archive stays in the point; nothing new: the manifest stays as it is.
    s3.delete_object(Bucket=BUCKET, Key=prefix + "emoji 🚀/part-1")
    before = _manifest_object(s3, "oddkeys", day)
    gone = _archive(emr, "oddkeys", day)
    assert (gone.carried, gone.objects, gone.manifest) == (1, len(objects) + 1, "unchanged")
    assert _manifest_object(s3, "oddkeys", day) == before


def test_objects_that_cannot_be_archived_are_all_named_and_the_others_archived(
    emr: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    day, prefix, dest = "2026-05-02", "badday/dt=2026-05-02/", "emr/badday/dt=2026-05-02/"
    objects = odd_day(dest, regular=5, long_key_bytes=1025)  # one archive key 1 byte over S3's limit
    seed(s3, BUCKET, prefix, objects)
    s3.put_object(Bucket=BUCKET, Key=prefix + "frozen.parquet", Body=b"cold", StorageClass="GLACIER")
    real_copy = emr.s3.client.copy_object

    def copy(**kwargs: Any) -> Any:
        key = kwargs["CopySource"]["Key"]
        if key.endswith("part-00001.parquet"):  # real S3's answer to a source rewritten since the listing
            raise ClientError(
                {"Error": {"Code": "PreconditionFailed", "Message": "At least one"}}, "CopyObject"
            )
        if key.endswith("part-00002.parquet"):  # a late writer; moto copies the new version anyway
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"late rewrite")
        return real_copy(**kwargs)

    monkeypatch.setattr(emr.s3.client, "copy_object", copy)
    with pytest.raises(Exception, match="EMR job 'badday' for 2026-05-02: 4 object") as failed:
        _archive(emr, "badday", day)

    message = str(failed.value)
    assert "no manifest was written and the day is not protected" in message
    assert f"s3://{BUCKET}/{prefix}part-00001.parquet changed after it was listed (S3 refused" in message
    assert f"s3://{BUCKET}/{prefix}part-00002.parquet changed after it was listed (ETag" in message
    assert f"s3://{BUCKET}/{prefix}frozen.parquet is in a cold storage class" in message
    assert "would be a 1025-byte key; S3 allows 1024 bytes" in message
    assert emr.catalog.get("emr_output", "badday", f"dt={day}") is None
    archived = {o["Key"] for o in s3.list_objects_v2(Bucket=ARCHIVE, Prefix=dest).get("Contents", [])}
    good = {dest + n for n in objects if len((dest + n).encode()) <= 1024 and "part-0000" not in n}
    assert good <= archived
    for key in good:
        assert s3.get_object(Bucket=ARCHIVE, Key=key)["Body"].read() == objects[key[len(dest) :]]

    # With the bad objects fixed, the day archives in full.
    monkeypatch.setattr(emr.s3.client, "copy_object", real_copy)
    s3.delete_object(Bucket=BUCKET, Key=prefix + next(n for n in objects if len((dest + n).encode()) > 1024))
    s3.delete_object(Bucket=BUCKET, Key=prefix + "frozen.parquet")
    summary = _archive(emr, "badday", day)
    assert summary.objects == len(objects) - 1 and summary.manifest == "written"


def test_a_copy_changed_after_it_was_copied_fails_the_verifying_listing(emr: Any, s3: Any) -> None:
    day, prefix = "2026-05-03", "tamper/dt=2026-05-03/"
    seed(s3, BUCKET, prefix, {f"part-{n}": f"rows {n}".encode() * 100 for n in range(5)})
    real_copy = emr.s3.client.copy_object

    def copy_then_tamper(**kwargs: Any) -> Any:
        response = real_copy(**kwargs)
        if kwargs["Key"].endswith("part-3"):  # someone rewrites the copy before the run ends
            s3.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=b"tampered")
        return response

    emr.s3.client.copy_object = copy_then_tamper
    with pytest.raises(Exception, match=r"emr/tamper/dt=2026-05-03/part-3: changed after its verified copy"):
        _archive(emr, "tamper", day)
    assert emr.catalog.get("emr_output", "tamper", f"dt={day}") is None


def test_kms_encryption_is_applied_to_copies(embedded_stack: Any, s3: Any) -> None:
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.core.s3 import BackupS3Hook

    embedded_stack.create_buckets(BUCKET)
    hook = BackupS3Hook(aws_conn_id="aws_default")
    s3.put_object(Bucket=BUCKET, Key="kms/a", Body=b"secret rows")
    src = hook.list_objects(BUCKET, "kms/")[0]
    kms = Encryption(mode="SSE-KMS", kms_key_id="alias/archive")
    result = hook.copy_verified(src, ARCHIVE, "emr/kms/a", encryption=kms)
    head = s3.head_object(Bucket=ARCHIVE, Key="emr/kms/a")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert result.sha256_hex == sha256(b"secret rows")


def test_invalid_lifecycle_is_rejected_before_any_call(
    example_config: dict[str, Any], write_config: Any
) -> None:
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.errors import ConfigError

    example_config["emr_archive"]["lifecycle"]["transitions"] = [
        {"days": 30, "storage_class": "GLACIER"},
        {"days": 60, "storage_class": "DEEP_ARCHIVE"},
    ]
    path = write_config(example_config)
    with pytest.raises(
        ConfigError, match=r"emr_archive.lifecycle: .*GLACIER has a minimum storage duration of 90"
    ):
        load_config(path)


def test_a_source_prefix_that_holds_nothing_fails_and_writes_no_empty_point(emr: Any, s3: Any) -> None:
    """A misspelt source (``emr_archive.jobs[].source``) lists nothing: the run fails naming the
    prefix, copies nothing and writes no manifest. (Before it, the marker sensor times out naming
    the marker it waited for: tests/e2e/emr/test_dag.py.)"""
    from backup_pipelines.core.errors import VerificationError

    with pytest.raises(VerificationError, match=rf"s3://{BUCKET}/oddkeys/dt=2031-01-01/ holds no objects$"):
        _archive(emr, "oddkeys", "2031-01-01")
    assert s3.list_objects_v2(Bucket=ARCHIVE, Prefix="emr/oddkeys/dt=2031-01-01/").get("KeyCount", 0) == 0
    assert emr.catalog.get("emr_output", "oddkeys", "dt=2031-01-01") is None
