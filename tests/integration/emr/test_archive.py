"""EMR archive building blocks against the embedded stack (moto server over HTTP): corruption, lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.core.config import Encryption
from backup_pipelines.core.errors import ChecksumMismatchError

pytestmark = pytest.mark.integration

BUCKET = "emr-output-int"


@pytest.fixture
def hook(embedded_stack: Any) -> Any:
    from backup_pipelines.core.s3 import BackupS3Hook

    embedded_stack.create_buckets(BUCKET)
    return BackupS3Hook(aws_conn_id="aws_default")


def test_object_changed_between_copy_and_verify_fails_and_leaves_no_manifest(
    hook: Any, s3: Any, example_config: dict[str, Any], write_config: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.emr.archive import EmrArchiveService

    write_config(example_config)
    cfg = load_config()
    for n in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"job/dt=2026-05-01/part-{n}", Body=f"rows {n}".encode() * 100)
    sources = hook.list_objects(BUCKET, "job/dt=2026-05-01/")
    real_copy = hook.client.copy_object

    def copy_then_tamper(**kwargs: Any) -> Any:
        response = real_copy(**kwargs)
        if kwargs["Key"].endswith("part-3"):  # someone rewrites the copy before it is verified
            s3.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=b"tampered")
        return response

    hook.client.copy_object = copy_then_tamper
    with pytest.raises(
        ChecksumMismatchError, match=r"emr/corrupt/dt=2026-05-01/part-3 .* failed verification"
    ):
        EmrArchiveService(cfg, hook, Catalog.from_config(cfg)).copy_all(
            sources,
            src_prefix="job/dt=2026-05-01/",
            dest_bucket="analytics-archive",
            dest_prefix="emr/corrupt/dt=2026-05-01/",
            now=datetime.now(UTC),
        )
    assert Catalog.from_config(cfg).get("emr_output", "corrupt", "dt=2026-05-01") is None


def test_kms_encryption_is_applied_to_copies(hook: Any, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="kms/a", Body=b"secret rows")
    src = hook.list_objects(BUCKET, "kms/")[0]
    kms = Encryption(mode="SSE-KMS", kms_key_id="alias/archive")
    result = hook.copy_verified(src, "analytics-archive", "emr/kms/a", encryption=kms)
    head = s3.head_object(Bucket="analytics-archive", Key="emr/kms/a")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert result.sha256


def test_lifecycle_task_keeps_foreign_rules_and_is_idempotent(
    embedded_stack: Any, s3: Any, example_config: dict[str, Any], write_config: Any
) -> None:
    from backup_pipelines.emr.operators import ApplyLifecyclePolicyOperator

    embedded_stack.create_buckets("lifecycle-int")
    example_config["storage"]["archive_bucket"] = "lifecycle-int"
    write_config(example_config)
    foreign = {
        "ID": "team-logs-expiry",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 14},
    }
    s3.put_bucket_lifecycle_configuration(Bucket="lifecycle-int", LifecycleConfiguration={"Rules": [foreign]})

    op = ApplyLifecyclePolicyOperator(task_id="apply")
    first = op.execute({})
    second = op.execute({})

    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="lifecycle-int")["Rules"]}
    assert set(rules) == {"team-logs-expiry", "backup-pipelines-emr"}
    assert rules["team-logs-expiry"]["Expiration"] == {"Days": 14}
    ours = rules["backup-pipelines-emr"]
    assert ours["Filter"]["Prefix"] == "emr/"
    assert [(t["Days"], t["StorageClass"]) for t in ours["Transitions"]] == [
        (30, "GLACIER_IR"),
        (180, "DEEP_ARCHIVE"),
    ]
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert first["changed"] is True and second["changed"] is False


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
