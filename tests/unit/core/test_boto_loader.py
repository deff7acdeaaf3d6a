"""Building this package's S3 clients: one data loader per process, no walk of the call stack."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from backup_pipelines.core.boto_loader import shared_data_loader
from backup_pipelines.core.s3 import BackupS3Hook

UNIT_AWS_CONN_ID = "aws_unit"  # the moto_s3 fixture's connection


def test_the_user_agent_names_this_package_without_walking_the_stack(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[bool] = []

    def stack(*_: Any, **__: Any) -> Any:
        walked.append(True)
        raise AssertionError("inspect.stack() walked")

    monkeypatch.setattr(inspect, "stack", stack)
    client = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID).client

    assert "Caller/backup_pipelines" in client.meta.config.user_agent_extra
    assert walked == []


def test_every_client_shares_the_process_data_loader(moto_s3: Any) -> None:
    first, second = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID), BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    loaders = [hook.get_session()._session.get_component("data_loader") for hook in (first, second)]
    assert loaders[0] is loaders[1] is shared_data_loader()


def test_listed_timestamps_are_read_without_dateutil_and_equal_botocores(moto_s3: Any) -> None:
    """S3's ISO 8601 timestamps are parsed by ``datetime.fromisoformat`` (UTC as ``datetime.UTC``;
    botocore's dateutil parser gives ``tzutc()``); an HTTP date or epoch still goes to botocore's
    parser; both give the same instant."""
    from datetime import UTC

    from botocore import utils

    from backup_pipelines.core.boto_loader import parse_timestamp

    hook = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    hook.client.create_bucket(Bucket="ts-bucket")
    hook.client.put_object(Bucket="ts-bucket", Key="k", Body=b"x")
    expected = hook.client.head_object(Bucket="ts-bucket", Key="k")["LastModified"]  # an HTTP date

    [listed] = list(hook.iter_objects("ts-bucket", ""))

    assert listed.last_modified == expected
    assert listed.last_modified is not None and listed.last_modified.tzinfo is UTC, "parsed without dateutil"
    for value in (
        "2026-11-29T13:21:29.000Z",
        "Sun, 29 Nov 2026 13:21:29 GMT",
        1764422489,
        "2026-11-29T13:21:29",
    ):
        assert parse_timestamp(value) == utils.parse_timestamp(value), value
