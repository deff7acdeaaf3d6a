"""RPO ages and what counts as a breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backup_pipelines.core.config import human_duration
from backup_pipelines.monitor import rpo

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T = rpo.Target("clickhouse_snapshot", "analytics", 3600.0)


def age(minutes: float | None, at: datetime = NOW) -> rpo.Age:
    if minutes is None:
        return rpo.Age(T, at)
    return rpo.Age(T, at, newest_id="p1", captured_at=at - timedelta(minutes=minutes))


def test_age_and_breach_rules() -> None:
    assert age(59).fresh and not age(60).fresh
    assert not age(None).fresh  # no verified point is a breach
    assert not rpo.Age(T, NOW, error="NoSuchBucket").fresh
    assert human_duration(5400) == "1h 30m" and human_duration(90061) == "1d 1h"
    assert human_duration(-30) == "-30s"
