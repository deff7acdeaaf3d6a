"""The monitor pass: gauges, emails at the edges, the status JSON, a failed email keeps the state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.monitor.service import run_monitor

BUCKET = "unit-rpo-backups"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def _cfg(example_config: dict[str, Any]) -> BackupConfig:
    raw = dict(example_config)
    raw["connections"] = {"aws": "aws_unit"}
    raw["storage"] = {**example_config["storage"], "replica": None, "backup_bucket": BUCKET}
    raw["emr_archive"] = {"jobs": []}
    raw["kafka_archive"] = {"topics": []}
    raw["deep_archive_exports"] = {"exports": []}
    return BackupConfig.model_validate(raw)


def test_monitor_publishes_gauges_and_keeps_state_when_email_fails(s3, example_config) -> None:
    """A failed email raises (the task retries) and leaves the breach un-notified, so the retry sends it."""
    cfg = _cfg(example_config)
    gauges: dict[str, float] = {}

    def gauge(name: str, value: float) -> None:
        gauges[name] = value

    def broken_smtp(*_: Any, **__: Any) -> None:
        raise ConnectionRefusedError("SMTP relay down")

    with pytest.raises(ConnectionRefusedError):
        run_monitor(cfg, run_id="r1", now=NOW, gauge=gauge, send=broken_smtp)
    assert gauges["backup_pipelines.rpo.breached.clickhouse_snapshot.analytics"] == 1
    assert gauges["backup_pipelines.rpo.age_seconds.clickhouse_snapshot.analytics"] > 10 * 365 * 86400 - 1

    sent: list[str] = []
    result = run_monitor(
        cfg, run_id="r2", now=NOW, gauge=gauge, send=lambda message, **_: sent.append(message.subject)
    )
    assert sent == ["[RPO BREACH] clickhouse_snapshot/analytics: no verified recovery point"]
    assert result.summary()["breached"] == ["clickhouse_snapshot/analytics"]
    status = json.loads(s3.get_object(Bucket=BUCKET, Key="status/rpo.json")["Body"].read())
    assert status["run_id"] == "r2" and status["state"]["clickhouse_snapshot/analytics"]["breached"] is True
    head = s3.head_object(Bucket=BUCKET, Key="status/rpo.json")
    assert head["ServerSideEncryption"] == "AES256"
