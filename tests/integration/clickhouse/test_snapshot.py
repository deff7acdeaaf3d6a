"""Snapshot, verify and retention operators on the embedded stack, with the catalog's clock shifted.

Backups are real (chDB -> moto S3); only ``clock.utcnow`` is moved, so captured_at and ages
look like days passed between the runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.runs import hour_floor

pytestmark = pytest.mark.integration

KIND = "clickhouse_snapshot"


@pytest.fixture
def dataset(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> str:
    db = "snap_it_1"
    clickhouse_client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    clickhouse_client.command(f"CREATE TABLE IF NOT EXISTS {db}.t (id UInt64) ENGINE = MergeTree ORDER BY id")
    cfg = json.loads(json.dumps(example_config))
    cfg["storage"]["replica"] = None  # primary-only retention; the DR guard: tests/integration/replica
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-it/",
            "s3_credentials": "connection",
            "full_every": "3h",
            "retention_days": 7,
            "min_verified": 2,
            "datasets": [{"name": db, "database": db, "tables": ["*"]}],
        }
    )
    write_config(cfg)
    return db


def _run_slot(slot: datetime) -> None:
    from backup_pipelines.clickhouse.operators import ClickHouseSnapshotOperator, ClickHouseVerifyOperator

    context: Any = {"data_interval_start": slot - timedelta(hours=1), "data_interval_end": slot}
    ClickHouseSnapshotOperator(task_id="snapshot", dataset="snap_it_1").execute(context)
    ClickHouseVerifyOperator(task_id="verify", dataset="snap_it_1").execute(context)


def test_retention_with_a_shifted_clock_never_breaks_a_chain_and_keeps_the_minimum(
    dataset: str, clickhouse_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.clickhouse.operators import ClickHouseRetentionOperator
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.core import clock
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    now = {"now": datetime.now(UTC)}
    monkeypatch.setattr(clock, "utcnow", lambda: now["now"])
    start = hour_floor(datetime.now(UTC)) - timedelta(days=12)
    rows = 0
    # Three chains of three points (full_every 3h), the chains a day apart, all older than 7 days.
    for day in range(3):
        for hour in range(3):
            slot = start + timedelta(days=day, hours=hour)
            now["now"] = slot + timedelta(minutes=5)
            clickhouse_client.insert(f"{dataset}.t", [(rows + i,) for i in range(100)], column_names=["id"])
            rows += 100
            _run_slot(slot)

    catalog = Catalog.from_config(load_config())
    points = catalog.list_points(KIND, dataset).points
    assert [p.base is None for p in points] == [True, False, False] * 3
    assert all(p.is_verified for p in points)

    def retention(preview: bool = False) -> dict[str, Any]:
        context: Any = {"params": {"retention_dry_run": preview}}
        return ClickHouseRetentionOperator(task_id="retention").execute(context)

    now["now"] = datetime.now(UTC)
    preview = retention(preview=True)
    assert len(preview["deleted"]) == 3 and len(catalog.list_points(KIND, dataset).points) == 9
    report = retention()
    assert report["deleted"] == preview["deleted"]
    kept = catalog.list_points(KIND, dataset).points
    assert [p.recovery_point_id for p in kept] == [p.recovery_point_id for p in points[3:]]

    # A month later, with no new backup: the minimum of two verified chains stays, whole.
    now["now"] = datetime.now(UTC) + timedelta(days=30)
    assert retention()["deleted"] == []
    kept = catalog.list_points(KIND, dataset).points
    assert len({catalog.chain(p)[0].recovery_point_id for p in kept}) == 2
    for point in kept:
        assert catalog.chain(point)[0].base is None  # every kept point still restorable

    # The newest kept point restores every row inserted before its capture.
    newest = kept[-1]
    result = RestoreService.from_config(load_config()).restore_chain(
        catalog.chain(newest), target_database=f"{dataset}_after_retention"
    )
    assert result.ok and result.rows == {"t": rows}
