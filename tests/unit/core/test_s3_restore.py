"""S3RestoreTrigger: fires once every key is readable; errors name the key that can never be."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from backup_pipelines.core.config import Encryption
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.core.s3_restore import S3RestoreTrigger


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[BackupS3Hook]:
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        h = BackupS3Hook(aws_conn_id=None)
        h.client.create_bucket(Bucket="archive")
        for key, cls in (("a", "GLACIER"), ("b", "DEEP_ARCHIVE"), ("c", "GLACIER_IR")):
            h.put_encrypted("archive", key, key.encode(), encryption=Encryption(), storage_class=cls)
        yield h


def _events(trigger: S3RestoreTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_serialize_round_trip() -> None:
    trigger = S3RestoreTrigger(bucket="archive", keys=["a"], poll_interval=5, request_days=1)
    path, kwargs = trigger.serialize()
    assert path == "backup_pipelines.core.s3_restore.S3RestoreTrigger"
    assert S3RestoreTrigger(**kwargs).serialize() == (path, kwargs)


def test_fires_when_all_keys_are_restored(hook: BackupS3Hook) -> None:
    hook.request_restore("archive", "a")
    hook.request_restore("archive", "b")
    events = _events(S3RestoreTrigger(bucket="archive", keys=["a", "b", "c"], aws_conn_id=None))
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["keys"] == ["a", "b", "c"]
    assert events[0]["expiry"]["a"] and events[0]["expiry"]["c"] is None


def test_waits_while_a_restore_is_in_progress(hook: BackupS3Hook, monkeypatch) -> None:
    from backup_pipelines.core import s3 as s3_archive

    states = iter(["in_progress", "in_progress", "restored"])
    real = s3_archive.BackupS3Hook.restore_status

    def fake(self: BackupS3Hook, bucket: str, key: str) -> s3_archive.RestoreStatus:
        status = real(self, bucket, key)
        return s3_archive.RestoreStatus(bucket, key, next(states), status.storage_class)  # type: ignore[arg-type]

    monkeypatch.setattr(s3_archive.BackupS3Hook, "restore_status", fake)
    events = _events(S3RestoreTrigger(bucket="archive", keys=["a"], aws_conn_id=None, poll_interval=0.01))
    assert [e["status"] for e in events] == ["success"]


def test_unrequested_restore_is_an_error_unless_the_trigger_may_request(hook: BackupS3Hook) -> None:
    events = _events(S3RestoreTrigger(bucket="archive", keys=["a"], aws_conn_id=None))
    assert events[0]["status"] == "error"
    assert "s3://archive/a is GLACIER and no restore was requested" in events[0]["message"]

    events = _events(S3RestoreTrigger(bucket="archive", keys=["a", "b"], aws_conn_id=None, request_days=1))
    assert events[0]["status"] == "success"
    assert hook.restore_status("archive", "b").state == "restored"


def test_missing_key_is_an_error(hook: BackupS3Hook) -> None:
    events = _events(S3RestoreTrigger(bucket="archive", keys=["nope"], aws_conn_id=None))
    assert events == [{"status": "error", "bucket": "archive", "message": "s3://archive/nope does not exist"}]
