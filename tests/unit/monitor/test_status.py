"""Breach edges between runs, and a corrupt status JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backup_pipelines.monitor import rpo, status
from backup_pipelines.monitor.service import transition_email

BUCKET = "unit-rpo-backups"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T = rpo.Target("clickhouse_snapshot", "analytics", 3600.0)


def age(minutes: float, at: datetime = NOW) -> rpo.Age:
    return rpo.Age(T, at, newest_id="p1", captured_at=at - timedelta(minutes=minutes))


def test_only_edges_make_transitions() -> None:
    state: dict[str, status.DatasetState] = {}
    [breach] = status.transitions(state, [age(90)])
    assert breach.kind == "breach"
    state = status.apply(state, breach)
    assert status.transitions(state, [age(105, NOW + timedelta(minutes=15))]) == []  # still breached
    later = NOW + timedelta(minutes=45)
    [recovered] = status.transitions(state, [age(5, later)])
    assert recovered.kind == "recovered" and recovered.breached_since == NOW
    subject = transition_email(recovered).subject
    assert subject == "[RPO RECOVERED] clickhouse_snapshot/analytics: back within RPO (breach lasted 45m)"
    state = status.apply(state, recovered)
    assert status.transitions(state, [age(5, later)]) == []


def test_corrupt_status_is_reset_not_fatal(moto_s3: Any) -> None:
    from backup_pipelines.core.s3 import BackupS3Hook

    moto_s3.create_bucket(Bucket=BUCKET)
    moto_s3.put_object(Bucket=BUCKET, Key="status/rpo.json", Body=b'{"state": {"x": ')
    found = status.read_status(BackupS3Hook(aws_conn_id="aws_unit"), bucket=BUCKET, key="status/rpo.json")
    assert found.state == {}
