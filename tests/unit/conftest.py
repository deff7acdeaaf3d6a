"""Unit-test fixtures. Unit tests may use in-process moto; integration tests use the embedded stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

UNIT_AWS_CONN_ID = "aws_unit"


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """In-process moto S3 with local credentials and the Airflow connection ``aws_unit``."""
    import boto3
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{UNIT_AWS_CONN_ID.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
    )
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")
