"""RecoveryPointFreshnessSensor and its trigger: fresh, stale, unverified, deferral, timeout."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

BUCKET = "unit-sensor-backups"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    from backup_pipelines.core import clock

    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def config(write_config, example_config) -> Path:
    raw = dict(example_config)
    raw["connections"] = {"aws": "aws_unit"}
    raw["storage"] = {**example_config["storage"], "backup_bucket": BUCKET}
    return write_config(raw)


def _write(client: Any, dataset: str, captured_at: datetime, *, state: str = "verified") -> str:
    from support.catalog import ClientS3Hook

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.manifest import Manifest, Verification

    hook = ClientS3Hook(client)

    point_id = f"{captured_at:%Y%m%dT%H%M%SZ}"
    Catalog(hook, bucket=BUCKET).write(
        Manifest(
            kind="clickhouse_snapshot",
            dataset=dataset,
            recovery_point_id=point_id,
            captured_at=captured_at,
            location=f"s3://{BUCKET}/clickhouse/{dataset}/{point_id}/",
            storage_class="STANDARD",
            verification=Verification(state=state, verified_at=captured_at),
        )
    )
    return point_id


def _sensor(**kwargs: Any) -> Any:
    from backup_pipelines.monitor.sensors import RecoveryPointFreshnessSensor

    return RecoveryPointFreshnessSensor(task_id="wait_fresh", kind="clickhouse_snapshot", **kwargs)


def test_fresh_verified_point_passes_at_once(s3, frozen_now, config) -> None:
    point = _write(s3, "analytics", NOW - timedelta(minutes=40))
    result = _sensor().execute({})
    assert result["ok"] is True
    assert result["newest_verified"] == {"clickhouse_snapshot/analytics": point}
    assert result["ages"] == {"clickhouse_snapshot/analytics": 2400.0}


def test_stale_or_unverified_points_defer_to_the_trigger(s3, frozen_now, config) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    _write(s3, "analytics", NOW - timedelta(hours=3))
    _write(s3, "analytics", NOW - timedelta(minutes=10), state="unverified")  # does not count
    _write(s3, "analytics", NOW - timedelta(minutes=5), state="failed")  # does not count
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(poke_interval=30, timeout=600).execute({})
    trigger = deferred.value.trigger
    path, kwargs = trigger.serialize()
    assert path == "backup_pipelines.monitor.triggers.RecoveryPointFreshnessTrigger"
    assert kwargs["check_kwargs"]["datasets"] == [["clickhouse_snapshot", "analytics", 3600.0]]
    assert kwargs["poll_interval"] == 30.0
    assert abs(kwargs["timeout_at"] - (time.time() + 600)) < 5
    json.dumps(kwargs)  # stored in the metadata DB


def test_poke_mode_reports_what_is_stale(s3, frozen_now, config) -> None:
    _write(s3, "analytics", NOW - timedelta(hours=3))
    sensor = _sensor(deferrable=False)
    poke = sensor.poke({})
    assert poke.is_done is False
    assert "age 3h; RPO 1h: RPO BREACHED" in poke.xcom_value["detail"]


def test_max_age_overrides_the_rpo(s3, frozen_now, config) -> None:
    _write(s3, "analytics", NOW - timedelta(hours=3))
    assert _sensor(max_age=timedelta(hours=4)).execute({})["ok"] is True


def test_no_matching_dataset_is_a_config_error(s3, config) -> None:
    from backup_pipelines.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no configured dataset matches kind='clickhouse_snapshot'"):
        _sensor(dataset="nope").execute({})


def _events(trigger: Any) -> list[dict[str, Any]]:
    async def _collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(_collect())


def test_trigger_fires_when_a_verified_point_arrives(s3, config, monkeypatch) -> None:
    """The triggerer polls the catalog; the second poll sees a new verified point."""
    from backup_pipelines.core import clock
    from backup_pipelines.monitor.sensors import CHECK_FRESHNESS
    from backup_pipelines.monitor.triggers import RecoveryPointFreshnessTrigger

    _write(s3, "analytics", NOW - timedelta(hours=3))
    ticks = iter([NOW, NOW + timedelta(minutes=1)])
    monkeypatch.setattr(clock, "utcnow", lambda: next(ticks))
    polls: list[int] = []
    original = asyncio.sleep

    async def _sleep(seconds: float) -> None:
        polls.append(1)
        _write(s3, "analytics", NOW)  # the hourly backup lands and is verified
        await original(0)

    monkeypatch.setattr(asyncio, "sleep", _sleep)
    kwargs = {
        "aws_conn_id": "aws_unit",
        "bucket": BUCKET,
        "catalog_prefix": "catalog/",
        "datasets": [["clickhouse_snapshot", "analytics", 3600.0]],
    }
    trigger = RecoveryPointFreshnessTrigger(check_kwargs=kwargs, poll_interval=5)
    [event] = _events(trigger)
    assert event["status"] == "success" and event["polls"] == 2
    assert event["ages"] == {"clickhouse_snapshot/analytics": 60.0}
    assert trigger.check_path == CHECK_FRESHNESS


def test_trigger_times_out_and_the_sensor_says_what_is_stale(s3, frozen_now, config) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from backup_pipelines.monitor.triggers import RecoveryPointFreshnessTrigger

    _write(s3, "analytics", NOW - timedelta(hours=3))
    kwargs = {
        "aws_conn_id": "aws_unit",
        "bucket": BUCKET,
        "catalog_prefix": "catalog/",
        "datasets": [["clickhouse_snapshot", "analytics", 3600.0]],
    }
    [event] = _events(RecoveryPointFreshnessTrigger(check_kwargs=kwargs, timeout_at=time.time()))
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match="wait_fresh timed out: clickhouse_snapshot/analytics"):
        _sensor().execute_complete({}, event)


def test_trigger_reports_a_broken_check() -> None:
    from backup_pipelines.monitor.triggers import PollingCheckTrigger

    [event] = _events(PollingCheckTrigger(check_path="backup_pipelines.nope.check", check_kwargs={}))
    assert event["status"] == "error" and "backup_pipelines.nope" in event["detail"]
