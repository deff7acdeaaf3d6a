"""The package's lifecycle rules on both buckets, and what they are for: uploads left by killed tasks.

moto stores lifecycle rules but never runs them, so these tests show that every incomplete upload a
killed task (or ClickHouse's own BACKUP) leaves behind sits under an enabled rule that aborts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BACKUP, ARCHIVE = "lifecycle-int-backups", "lifecycle-int-archive"
FOREIGN = {
    "ID": "team-logs-expiry",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 14},
}

# A child process that starts a multipart upload and is killed once its first part is stored.
_UPLOAD_AND_HANG = """
import sys, time, boto3
from boto3.s3.transfer import TransferConfig
endpoint, bucket, key, path = sys.argv[1:]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
def hang(**_):
    print("part stored", flush=True)
    time.sleep(600)
client.meta.events.register("after-call.s3.UploadPart", hang)
mib = 1024 * 1024
client.upload_file(path, bucket, key, Config=TransferConfig(
    multipart_threshold=5 * mib, multipart_chunksize=5 * mib, max_concurrency=1, use_threads=False))
"""

_ARCHIVE_AND_HANG = """
import time
from backup_pipelines.core.config import load_config
from backup_pipelines.emr.archive import EmrArchiveService
service = EmrArchiveService.from_config(load_config())
def hang(**_):
    print("part copied", flush=True)
    time.sleep(600)
service.s3.client.meta.events.register("after-call.s3.UploadPartCopy", hang)
service.archive("bigjob", day="2026-06-01", source_url="s3://emr-output-int/bigjob/dt=2026-06-01/",
                interval=(None, None), run_id="killed")
"""


@pytest.fixture
def buckets(
    embedded_stack: Any, s3: Any, example_config: dict[str, Any], write_config: Any
) -> dict[str, Any]:
    embedded_stack.create_buckets(BACKUP, ARCHIVE, "emr-output-int")
    example_config["storage"].update(backup_bucket=BACKUP, archive_bucket=ARCHIVE)
    example_config["emr_archive"].update(multipart_threshold_mb=5, part_size_mb=5)
    example_config["emr_archive"]["jobs"] = [
        {"name": "bigjob", "source": "s3://emr-output-int/bigjob/dt={{ ds }}/"}
    ]
    for bucket in (BACKUP, ARCHIVE):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [FOREIGN]})
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):  # other tests' leftovers
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    write_config(example_config)
    return example_config


def _kill_when(args: list[str], line: str) -> None:
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert child.stdout is not None
        for out in iter(child.stdout.readline, ""):  # the child logs first; wait for its line
            if out.strip() == line:
                break
        else:
            raise AssertionError(f"the child ended (rc {child.wait()}) before printing {line!r}")
    finally:
        child.kill()
        child.wait(10)


def _uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_the_lifecycle_task_covers_every_prefix_the_package_writes_on_both_buckets(
    buckets: dict[str, Any], s3: Any
) -> None:
    from backup_pipelines.core.lifecycle import aborting_rule
    from backup_pipelines.emr.operators import ApplyLifecyclePolicyOperator

    # Uploads as the package's writers leave them when killed: catalog, ClickHouse BACKUP files,
    # drill reports, RPO status; EMR copies, Kafka archive files, exports.
    left = {
        BACKUP: [
            "catalog/emr_output/j/dt=2026-01-01.json",
            "clickhouse/analytics/20260101T0200Z/data/x.bin",
            "reports/dr-drill/2026-01-01.html",
            "status/rpo.json",
        ],
        ARCHIVE: [
            "emr/j/dt=2026-01-01/part-0",
            "kafka/events/partition=0/0-99.parquet",
            "exports/daily/month=2026-01/g-part-00000.parquet",
        ],
    }
    for bucket, keys in left.items():
        for key in keys:
            s3.create_multipart_upload(Bucket=bucket, Key=key)

    op = ApplyLifecyclePolicyOperator(task_id="apply")
    first, second = op.execute({}), op.execute({})

    assert {b: v["changed"] for b, v in first["buckets"].items()} == {BACKUP: True, ARCHIVE: True}
    assert {b: v["changed"] for b, v in second["buckets"].items()} == {BACKUP: False, ARCHIVE: False}
    for bucket, keys in left.items():
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert next(r for r in rules if r["ID"] == "team-logs-expiry") == FOREIGN
        assert sorted(_uploads(s3, bucket)) == sorted(keys)
        for key in _uploads(s3, bucket):
            rule = aborting_rule(rules, key)
            assert rule is not None, f"no rule aborts the upload of s3://{bucket}/{key}"
            assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
        assert aborting_rule(rules, "logs/app.log") is None
    emr = next(
        r
        for r in s3.get_bucket_lifecycle_configuration(Bucket=ARCHIVE)["Rules"]
        if r["ID"] == "backup-pipelines-emr"
    )
    assert [(t["Days"], t["StorageClass"]) for t in emr["Transitions"]] == [
        (30, "GLACIER_IR"),
        (180, "DEEP_ARCHIVE"),
    ]
    assert "Expiration" not in emr


def test_a_killed_kafka_upload_is_left_under_a_rule_that_aborts_it(
    buckets: dict[str, Any], s3: Any, embedded_stack: Any, tmp_path: Any
) -> None:
    from backup_pipelines.core.lifecycle import aborting_rule
    from backup_pipelines.emr.operators import ApplyLifecyclePolicyOperator

    path = tmp_path / "archive.parquet"
    path.write_bytes(os.urandom(12 * 1024 * 1024))
    key = "kafka/events/partition=3/1000-1999.parquet"
    _kill_when(
        [sys.executable, "-c", _UPLOAD_AND_HANG, embedded_stack.s3_endpoint, ARCHIVE, key, str(path)],
        "part stored",
    )

    assert _uploads(s3, ARCHIVE) == [key]
    assert "Contents" not in s3.list_objects_v2(Bucket=ARCHIVE, Prefix="kafka/")
    ApplyLifecyclePolicyOperator(task_id="apply").execute({})
    rules = s3.get_bucket_lifecycle_configuration(Bucket=ARCHIVE)["Rules"]
    assert aborting_rule(rules, key)["ID"] == "backup-pipelines-kafka"  # type: ignore[index]


def test_an_archive_killed_mid_multipart_copy_leaves_no_point_and_the_rerun_archives_the_day(
    buckets: dict[str, Any], s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.lifecycle import aborting_rule, package_rules
    from backup_pipelines.emr.archive import EmrArchiveService

    big = os.urandom(11 * 1024 * 1024)
    s3.put_object(Bucket="emr-output-int", Key="bigjob/dt=2026-06-01/part-0", Body=big)
    s3.put_object(Bucket="emr-output-int", Key="bigjob/dt=2026-06-01/_SUCCESS", Body=b"")
    _kill_when([sys.executable, "-c", _ARCHIVE_AND_HANG], "part copied")

    cfg = load_config()
    assert Catalog.from_config(cfg).get("emr_output", "bigjob", "dt=2026-06-01") is None
    left = _uploads(s3, ARCHIVE)
    assert left == ["emr/bigjob/dt=2026-06-01/part-0"]
    assert aborting_rule(package_rules(cfg)[ARCHIVE], left[0]) is not None

    summary = EmrArchiveService.from_config(cfg).archive(
        "bigjob",
        day="2026-06-01",
        source_url="s3://emr-output-int/bigjob/dt=2026-06-01/",
        interval=(None, None),
        run_id="rerun",
    )
    assert (summary.objects, summary.copied) == (2, 2)
    assert s3.get_object(Bucket=ARCHIVE, Key="emr/bigjob/dt=2026-06-01/part-0")["Body"].read() == big
    manifest = Catalog.from_config(cfg).read("emr_output", "bigjob", "dt=2026-06-01")
    part = next(o for o in manifest.objects if o.key.endswith("part-0"))
    # Copied again in three 5 MiB parts: moto answers UploadPartCopy without part checksums, so the
    # copy is verified by size and the ETag assembled from the parts (see README, "Not verified here").
    assert (part.size, part.etag.endswith("-3")) == (len(big), True)
    assert _uploads(s3, ARCHIVE) == left, "the re-run's own multipart copy completed"
