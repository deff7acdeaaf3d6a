"""RPO ages, breach edges, the status JSON and the monitor pass (gauges, emails, failure paths)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.monitor import rpo

BUCKET = "unit-rpo-backups"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T = rpo.Target("clickhouse_snapshot", "analytics", 3600.0)


def _age(minutes: float | None, at: datetime = NOW) -> rpo.Age:
    if minutes is None:
        return rpo.Age(T, at)
    return rpo.Age(T, at, newest_id="p1", captured_at=at - timedelta(minutes=minutes))


def test_age_and_breach_rules() -> None:
    assert _age(59).fresh and not _age(60).fresh
    assert not _age(None).fresh  # no verified point is a breach
    assert not rpo.Age(T, NOW, error="NoSuchBucket").fresh
    assert rpo.human_duration(5400) == "1h 30m" and rpo.human_duration(90061) == "1d 1h"
    assert rpo.human_duration(-30) == "-30s"


def test_only_edges_make_transitions() -> None:
    state: dict[str, rpo.DatasetState] = {}
    [breach] = rpo.transitions(state, [_age(90)])
    assert breach.kind == "breach"
    state = rpo.apply(state, breach)
    assert rpo.transitions(state, [_age(105, NOW + timedelta(minutes=15))]) == []  # still breached
    later = NOW + timedelta(minutes=45)
    [recovered] = rpo.transitions(state, [_age(5, later)])
    assert recovered.kind == "recovered" and recovered.breached_since == NOW
    subject, _ = rpo.transition_email(recovered)
    assert subject == "[RPO RECOVERED] clickhouse_snapshot/analytics: back within RPO (breach lasted 45m)"
    state = rpo.apply(state, recovered)
    assert rpo.transitions(state, [_age(5, later)]) == []


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def _cfg(example_config: dict[str, Any]) -> BackupConfig:
    raw = dict(example_config)
    raw["connections"] = {"aws": "aws_unit"}
    raw["storage"] = {**example_config["storage"], "backup_bucket": BUCKET}
    raw["emr_archive"] = {"jobs": []}
    raw["kafka_archive"] = {"topics": []}
    raw["deep_archive_exports"] = {"exports": []}
    return BackupConfig.model_validate(raw)


def test_corrupt_status_is_reset_not_fatal(s3) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3.put_object(Bucket=BUCKET, Key="status/rpo.json", Body=b'{"state": {"x": ')
    status = rpo.read_status(S3Hook(aws_conn_id="aws_unit"), bucket=BUCKET, key="status/rpo.json")
    assert status.state == {}


def test_monitor_publishes_gauges_and_keeps_state_when_email_fails(s3, example_config) -> None:
    """A failed email raises (the task retries) and leaves the breach un-notified, so the retry sends it."""
    cfg = _cfg(example_config)
    gauges: dict[str, float] = {}

    def gauge(name: str, value: float) -> None:
        gauges[name] = value

    def broken_smtp(**_: Any) -> None:
        raise ConnectionRefusedError("SMTP relay down")

    with pytest.raises(ConnectionRefusedError):
        rpo.run_monitor(cfg, run_id="r1", now=NOW, gauge=gauge, send=broken_smtp)
    assert gauges["backup_pipelines.rpo.breached.clickhouse_snapshot.analytics"] == 1
    assert gauges["backup_pipelines.rpo.age_seconds.clickhouse_snapshot.analytics"] > 10 * 365 * 86400 - 1

    sent: list[str] = []
    result = rpo.run_monitor(
        cfg, run_id="r2", now=NOW, gauge=gauge, send=lambda **kw: sent.append(kw["subject"])
    )
    assert sent == ["[RPO BREACH] clickhouse_snapshot/analytics: no verified recovery point"]
    assert result.summary()["breached"] == ["clickhouse_snapshot/analytics"]
    status = json.loads(s3.get_object(Bucket=BUCKET, Key="status/rpo.json")["Body"].read())
    assert status["run_id"] == "r2" and status["state"]["clickhouse_snapshot/analytics"]["breached"] is True
    head = s3.head_object(Bucket=BUCKET, Key="status/rpo.json")
    assert head["ServerSideEncryption"] == "AES256"
