"""emr_daily_output_archive end to end with dag.test() on the embedded stack (moto S3 over HTTP)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

SOURCE_BUCKET = "emr-output-e2e"
JOB = "sessionization"


class WorkerBytes:
    """Object bytes through this process: GetObject bodies fetched and PutObject/UploadPart bodies sent.

    Manifests (the catalog prefix) are metadata, not archived data, and are not counted.
    """

    def __init__(self) -> None:
        self.read = 0
        self.sent = 0


@pytest.fixture
def worker_bytes(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerBytes]:
    import botocore.client

    counter = WorkerBytes()
    real_call = botocore.client.BaseClient._make_api_call

    def call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        response = real_call(self, operation_name, api_params)
        if str(api_params.get("Key", "")).startswith("catalog/"):
            return response
        if operation_name == "GetObject":
            counter.read += int(response.get("ContentLength", 0))
        elif operation_name in ("PutObject", "UploadPart"):
            body = api_params.get("Body", b"")
            counter.sent += len(body) if isinstance(body, bytes | str) else 0
        return response

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    yield counter


@pytest.fixture
def emr_config(embedded_stack: Any, example_config: dict[str, Any], write_config: Any) -> dict[str, Any]:
    embedded_stack.create_buckets(SOURCE_BUCKET)
    example_config["emr_archive"]["jobs"] = [
        {
            "name": JOB,
            "source": f"s3://{SOURCE_BUCKET}/{JOB}/dt={{{{ ds }}}}/",
            "sensor_timeout": "3s",
        }
    ]
    example_config["emr_archive"]["poke_interval"] = "1s"
    example_config["emr_archive"]["concurrency"] = 4
    # Airflow 3.3's dag.test() fails once a run with a deadline alert succeeds (DeadlineAlert
    # lookup by id gets the alert itself); the DR drill e2e test drops deadlines for the same reason.
    example_config["deadlines"].pop("emr_daily_output_archive", None)
    write_config(example_config)
    return example_config


def _dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "emr_daily_output_archive.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["emr_daily_output_archive"]


def _run_end(day: date) -> datetime:
    """dag.test(logical_date=T) runs the interval ending at T; ds is the day before."""
    return datetime(day.year, day.month, day.day, 3, tzinfo=UTC) + timedelta(days=1)


def _archive_keys(s3: Any, day: date) -> list[str]:
    prefix = f"emr/{JOB}/dt={day.isoformat()}/"
    return sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket="analytics-archive", Prefix=prefix).get("Contents", [])
    )


def _seed(s3: Any, day: date) -> list[str]:
    from backup_pipelines.dev.sample_data import seed_emr_outputs

    return seed_emr_outputs(s3, bucket=SOURCE_BUCKET, job=JOB, day=day, files=3, rows_per_file=50)


def test_a_day_is_archived_with_checksums_encryption_and_manifest_and_reruns_copy_nothing(
    emr_config: dict[str, Any], s3: Any, worker_bytes: WorkerBytes
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    day = date(2026, 2, 10)
    sources = _seed(s3, day)
    dag = _dag()

    seeded = worker_bytes.sent
    run = run_dag_in_process(dag, logical_date=_run_end(day))
    assert str(run.state).endswith("success")
    # Not one byte of object data passed through the worker: copies are server-side.
    assert (worker_bytes.read, worker_bytes.sent - seeded) == (0, 0)

    keys = _archive_keys(s3, day)
    assert keys == sorted(
        [f"emr/{JOB}/dt=2026-02-10/{k.rsplit('/', 1)[1]}" for k in sources]
        + [f"emr/{JOB}/dt=2026-02-10/_SUCCESS"]
    )
    manifest = Catalog.from_config(load_config()).read("emr_output", JOB, "dt=2026-02-10")
    assert manifest.is_verified and manifest.location == f"s3://analytics-archive/emr/{JOB}/dt=2026-02-10/"
    assert manifest.details["source"] == f"s3://{SOURCE_BUCKET}/{JOB}/dt=2026-02-10/"
    by_key = {o.key: o for o in manifest.objects}
    for src_key in sources:
        data = s3.get_object(Bucket=SOURCE_BUCKET, Key=src_key)["Body"].read()
        dest_key = f"emr/{JOB}/dt=2026-02-10/{src_key.rsplit('/', 1)[1]}"
        head = s3.head_object(Bucket="analytics-archive", Key=dest_key, ChecksumMode="ENABLED")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert by_key[dest_key].sha256 == hashlib.sha256(data).hexdigest()
        assert by_key[dest_key].size == len(data)
    rules = s3.get_bucket_lifecycle_configuration(Bucket="analytics-archive")["Rules"]
    ours = next(r for r in rules if r["ID"] == "backup-pipelines-emr")
    assert [(t["Days"], t["StorageClass"]) for t in ours["Transitions"]] == [
        (30, "GLACIER_IR"),
        (180, "DEEP_ARCHIVE"),
    ]
    assert "Expiration" not in ours

    # Re-run of the same date: nothing copied again, same manifest, same capture time.
    read_by_test = worker_bytes.read
    before = {k: s3.head_object(Bucket="analytics-archive", Key=k)["LastModified"] for k in keys}
    run = run_dag_in_process(dag, logical_date=_run_end(day))
    assert str(run.state).endswith("success")
    after = {k: s3.head_object(Bucket="analytics-archive", Key=k)["LastModified"] for k in keys}
    assert after == before
    again = Catalog.from_config(load_config()).read("emr_output", JOB, "dt=2026-02-10")
    assert again.objects == manifest.objects and again.captured_at == manifest.captured_at
    assert (worker_bytes.read, worker_bytes.sent) == (read_by_test, seeded)


def test_backfill_of_three_days_archives_three_dates(emr_config: dict[str, Any], s3: Any) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    days = [date(2026, 3, d) for d in (1, 2, 3)]
    for day in days:
        _seed(s3, day)
    dag = _dag()
    for day in days:
        run = run_dag_in_process(dag, logical_date=_run_end(day))
        assert str(run.state).endswith("success"), f"{day}: {run.state}"
    ids = {
        p.recovery_point_id for p in Catalog.from_config(load_config()).list_points("emr_output", JOB).points
    }
    assert {"dt=2026-03-01", "dt=2026-03-02", "dt=2026-03-03"} <= ids
    for day in days:
        assert len(_archive_keys(s3, day)) == 4


def test_missing_marker_times_out_naming_job_and_date(
    emr_config: dict[str, Any], s3: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.sample_data import seed_emr_outputs

    day = date(2026, 4, 5)
    seed_emr_outputs(
        s3, bucket=SOURCE_BUCKET, job=JOB, day=day, files=1, rows_per_file=10, success_marker=None
    )
    run = run_dag_in_process(_dag(), logical_date=_run_end(day))
    assert str(run.state).endswith("failed")
    assert (
        f"EMR job '{JOB}' for 2026-04-05: s3://{SOURCE_BUCKET}/{JOB}/dt=2026-04-05/_SUCCESS "
        "did not appear within 3s" in capfd.readouterr().out
    )
    assert _archive_keys(s3, day) == []
    assert Catalog.from_config(load_config()).get("emr_output", JOB, "dt=2026-04-05") is None


def test_sources_are_deleted_only_after_the_verified_archive_and_only_if_unchanged(
    emr_config: dict[str, Any], write_config: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.s3_copy import VerifiedCopy

    emr_config["emr_archive"]["delete_source_after_archive"] = True
    write_config(emr_config)
    day = date(2026, 2, 20)
    sources = _seed(s3, day)
    rewritten = next(k for k in sources if k.endswith(".parquet"))
    real_copy = VerifiedCopy.copy_listed
    deletes: list[int] = []

    def copy_then_writer_overwrites(self: VerifiedCopy, src: Any, *args: Any, **kwargs: Any) -> Any:
        if not deletes:
            self.client.meta.events.register(
                "provide-client-params.s3.DeleteObjects",
                lambda params, **_: deletes.append(len(params["Delete"]["Objects"])),
            )
            deletes.append(0)
        result = real_copy(self, src, *args, **kwargs)
        if src.key == rewritten:  # a late writer replaces this file after it was archived
            s3.put_object(Bucket=SOURCE_BUCKET, Key=rewritten, Body=b"late rewrite")
        return result

    monkeypatch.setattr(VerifiedCopy, "copy_listed", copy_then_writer_overwrites)
    run = run_dag_in_process(_dag(), logical_date=_run_end(day))
    assert str(run.state).endswith("success")
    manifest = Catalog.from_config(load_config()).read("emr_output", JOB, f"dt={day.isoformat()}")
    archived = {o.key.rsplit("/", 1)[1] for o in manifest.objects}
    assert {k.rsplit("/", 1)[1] for k in sources} | {"_SUCCESS"} == archived
    left = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=SOURCE_BUCKET, Prefix=f"{JOB}/dt={day}/").get("Contents", [])
    ]
    assert left == [rewritten], "only the source that changed after its copy is kept"
    assert deletes == [0, len(sources)], "one DeleteObjects request for the unchanged sources and the marker"
    assert s3.get_object(Bucket=SOURCE_BUCKET, Key=rewritten)["Body"].read() == b"late rewrite"
