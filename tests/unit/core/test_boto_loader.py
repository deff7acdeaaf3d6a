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
