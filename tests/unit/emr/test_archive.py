"""EmrArchiveService on in-process moto: failures that must not lie, batched deletes, the copy pool."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import ArchiveCopyError, VerificationError
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.emr.archive import EmrArchiveService
from backup_pipelines.emr.run import bounded_map

DAY = "2026-01-01"
PREFIX = f"job/dt={DAY}/"
DEST = f"emr/job/dt={DAY}/"


def _service(**emr: Any) -> EmrArchiveService:
    cfg = BackupConfig.model_validate(
        {
            "connections": {"aws": "aws_unit"},
            "storage": {"backup_bucket": "unit-backups", "archive_bucket": "unit-archive"},
            "alerts": {"recipients": ["oncall@example.com"]},
            "emr_archive": {"jobs": [{"name": "job", "source": "s3://unit-out/job/dt={{ ds }}/"}], **emr},
        }
    )
    hook = BackupS3Hook(aws_conn_id="aws_unit")
    for bucket in ("unit-backups", "unit-archive", "unit-out"):
        hook.client.create_bucket(Bucket=bucket)
    return EmrArchiveService(cfg, hook, Catalog.from_config(cfg, s3=hook))


def _archive(service: EmrArchiveService) -> Any:
    return service.archive(
        "job", day=DAY, source_url=f"s3://unit-out/{PREFIX}", interval=(None, None), run_id="unit"
    )


def _put(service: EmrArchiveService, name: str, body: bytes) -> None:
    service.s3.client.put_object(Bucket="unit-out", Key=PREFIX + name, Body=body)


def _refuse(
    service: EmrArchiveService, name: str, monkeypatch: pytest.MonkeyPatch, code: str = "PreconditionFailed"
) -> None:
    real = service.s3.client.copy_object

    def copy(**kwargs: Any) -> Any:
        if name in ("*", kwargs["CopySource"]["Key"][len(PREFIX) :]):
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "CopyObject")
        return real(**kwargs)

    monkeypatch.setattr(service.s3.client, "copy_object", copy)


def test_a_rearchive_that_replaced_copies_and_failed_marks_the_previous_point_failed(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service()
    _put(service, "a", b"first version")
    first = _archive(service)
    assert first.manifest == "written"
    _put(service, "a", b"second version")  # the job re-ran the day...
    _put(service, "b", b"new file")  # ...and this file cannot be copied
    _refuse(service, "b", monkeypatch)

    with pytest.raises(VerificationError, match=rf"s3://unit-out/{PREFIX}b changed after it was listed"):
        _archive(service)

    point = service.catalog.read("emr_output", "job", f"dt={DAY}")
    assert point.verification.state == "failed"
    assert point.verification.detail == (
        f"a re-archive replaced or found lost 1 of its object(s) ({DEST}a) and did not complete; "
        "archive the day again"
    )


def test_an_object_gone_from_both_source_and_archive_is_named_and_fails_the_point(moto_s3: Any) -> None:
    service = _service()
    _put(service, "a", b"kept")
    _put(service, "b", b"lost")
    _archive(service)
    service.s3.client.delete_object(Bucket="unit-out", Key=PREFIX + "b")
    service.s3.client.delete_object(Bucket="unit-archive", Key=DEST + "b")

    with pytest.raises(
        VerificationError,
        match=rf"s3://unit-archive/{DEST}b: listed in the day's manifest .* the archive no longer "
        "holds it, and its source is gone",
    ):
        _archive(service)
    assert service.catalog.read("emr_output", "job", f"dt={DAY}").verification.state == "failed"


def test_a_point_failed_by_the_drill_is_copied_again_keeping_its_capture_time(moto_s3: Any) -> None:
    service = _service()
    _put(service, "a", b"rows")
    _archive(service)
    point = service.catalog.read("emr_output", "job", f"dt={DAY}")
    service.catalog.mark_verification(point, state="failed", checks=["archive.sha256"], detail="drill")

    again = _archive(service)

    assert (again.copied, again.manifest) == (1, "written")
    rewritten = service.catalog.read("emr_output", "job", f"dt={DAY}")
    assert rewritten.is_verified and rewritten.captured_at == point.captured_at


def test_a_failing_s3_stops_the_run_after_50_failures_in_a_row(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(concurrency=4)
    for n in range(80):
        _put(service, f"part-{n:03d}", b"x")
    _refuse(service, "*", monkeypatch, code="InternalError")

    with pytest.raises(ArchiveCopyError, match="stopped after 50 failures in a row") as failed:
        _archive(service)
    assert "copy of s3://unit-out/job/dt=2026-01-01/part-000 to s3://unit-archive/" in str(failed.value)
    assert service.catalog.get("emr_output", "job", f"dt={DAY}") is None


def test_sources_are_deleted_1000_a_request_after_one_listing_and_a_changed_one_is_kept(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(delete_source_after_archive=True)
    for n in range(1001):
        _put(service, f"part-{n:04d}", b"")
    _put(service, "late", b"v1")
    calls: list[str] = []
    batches: list[int] = []
    events = service.s3.client.meta.events
    events.register("after-call.s3", lambda model, **_: calls.append(model.name))
    events.register(
        "provide-client-params.s3.DeleteObjects",
        lambda params, **_: batches.append(len(params["Delete"]["Objects"])),
    )
    real_put = service.catalog.write

    def write_then_late_writer(manifest: Any) -> Any:
        key = real_put(manifest)
        _put(service, "late", b"v2")  # rewritten after its copy, before the deletes
        calls.clear()
        return key

    monkeypatch.setattr(service.catalog, "write", write_then_late_writer)
    summary = _archive(service)

    assert summary.deleted_sources == 1001 and batches == [1000, 1]
    assert calls == ["ListObjectsV2", "ListObjectsV2", "DeleteObjects", "DeleteObjects"]  # 2 listing pages
    left = service.s3.list_objects("unit-out", PREFIX)
    assert [o.key for o in left] == [PREFIX + "late"]


def test_the_copy_pool_keeps_a_bounded_window_and_returns_errors() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.001)
        with lock:
            running -= 1
        if n % 7 == 0:
            raise ValueError(f"bad {n}")
        return n * 2

    pulled: list[int] = []

    def items() -> Any:
        for n in range(200):
            pulled.append(n)
            yield n

    seen = {}
    for item, outcome in bounded_map(work, items(), workers=4, window=8):
        assert len(pulled) - len(seen) <= 8  # never more than the window pulled ahead
        seen[item] = outcome
    assert peak <= 4 and len(seen) == 200
    assert all(str(seen[n]) == f"bad {n}" if n % 7 == 0 else seen[n] == n * 2 for n in seen)
