"""The engine's waits on ``system.backups`` and its handling of explicit S3 credentials."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.core.errors import BackupFailedError

SECRET = "wJalrXUtnFEMI-sentinel"


def _engine_with(rows_by_sql: dict[str, list[tuple[Any, ...]]]) -> ClickHouseEngine:
    engine = ClickHouseEngine()
    client = mock.Mock()

    def query(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        for needle, rows in rows_by_sql.items():
            if needle in sql:
                return mock.Mock(result_rows=rows)
        raise AssertionError(f"unexpected SQL {sql}")

    client.query.side_effect = query
    engine.__dict__["client"] = client
    return engine


def test_wait_reports_a_failed_backup_with_its_error() -> None:
    engine = _engine_with(
        {"system.backups": [("id1", "BACKUP_FAILED", "Access Denied", 0, 0, 0, None, None)]}
    )
    with pytest.raises(BackupFailedError, match="ended BACKUP_FAILED: Access Denied"):
        engine.wait("id1", sleep=lambda _: None)


def _polled(*states: str) -> ClickHouseEngine:
    """An engine whose ``system.backups`` answers ``states`` one poll after the other."""
    answers = iter(states)
    engine = ClickHouseEngine()
    client = mock.Mock()
    client.query.side_effect = lambda sql, parameters=None: mock.Mock(
        result_rows=[("id1", next(answers), "", 3, 100, 100, None, None)]
    )
    engine.__dict__["client"] = client
    return engine


def test_wait_polls_until_done() -> None:
    engine = _polled("CREATING_BACKUP", "CREATING_BACKUP", "BACKUP_CREATED")
    sleeps: list[float] = []
    status = engine.wait("id1", poll_interval=0.5, sleep=sleeps.append)
    assert status.succeeded and status.num_files == 3 and sleeps == pytest.approx([0.03, 0.03])


def test_wait_notices_the_end_within_a_fixed_ceiling_however_long_the_backup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 ms between polls for the first 30 s, then 200 ms: never a fraction of the backup's time."""
    clock = [1000.0]
    monkeypatch.setattr("backup_pipelines.clickhouse.engine.time.monotonic", lambda: clock[0])
    engine = _polled(*["CREATING_BACKUP"] * 1400, "BACKUP_CREATED")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    assert engine.wait("id1", poll_interval=10.0, sleep=sleep).succeeded
    assert max(sleeps[:900]) == pytest.approx(0.03)
    assert max(sleeps) == pytest.approx(0.2) and sleeps[-1] == pytest.approx(0.2)


def test_explicit_credentials_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_SECRET_TEST",
        json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLE", "password": SECRET}),
    )
    masked: list[Any] = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, name=None: masked.append(value))
    engine = ClickHouseEngine(aws_conn_id="aws_secret_test", credentials="connection")
    creds = engine.s3_credentials()
    assert creds is not None and creds.access_key_id == "AKIAEXAMPLE"
    assert SECRET in masked
    assert ClickHouseEngine(aws_conn_id="aws_secret_test").s3_credentials() is None
