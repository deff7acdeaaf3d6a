"""ClickHouseBackupHook against the embedded stack: a real chain in S3, described, verified, restored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.clickhouse.engine import ClickHouseBackupHook, backup_location
from backup_pipelines.core.catalog import Manifest

pytestmark = pytest.mark.integration

BUCKET = "analytics-backups"


def _backup(
    hook: ClickHouseBackupHook, db: str, rp: str, base: Manifest | None, chain: list[str]
) -> Manifest:
    location = backup_location(BUCKET, "hooktest/", db, rp)
    captured = datetime.now(UTC)
    backup_id = hook.start_backup(
        dataset=db,
        rp_id=rp,
        database=db,
        tables=["t", "u"],
        location=location,
        base_location=base.location if base else None,
    )
    status = hook.wait(backup_id, poll_interval=0.05)
    return hook.describe(
        dataset=db,
        database=db,
        rp_id=rp,
        location=location,
        status=status,
        base=base,
        chain_locations=chain,
        captured_at=captured,
        interval_start=None,
        interval_end=None,
        full=base is None,
    )


def test_chain_is_described_verified_and_restored(clickhouse_client: Any) -> None:
    db = "hook_test_1"
    clickhouse_client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    clickhouse_client.command(f"CREATE TABLE {db}.t (x UInt64, s String) ENGINE = MergeTree ORDER BY x")
    clickhouse_client.command(f"CREATE TABLE {db}.u (x UInt64) ENGINE = MergeTree ORDER BY x")
    clickhouse_client.insert(f"{db}.t", [(i, "a") for i in range(1000)], column_names=["x", "s"])
    clickhouse_client.insert(f"{db}.u", [(i,) for i in range(10)], column_names=["x"])
    hook = ClickHouseBackupHook(credentials="connection")

    full = _backup(hook, db, "20260101T0100Z", None, [])
    assert full.row_counts == {"t": 1000, "u": 10}
    assert full.details["tables"] == ["t", "u"]
    assert full.software["clickhouse"]

    clickhouse_client.insert(f"{db}.t", [(i, "b") for i in range(1000, 1500)], column_names=["x", "s"])
    inc = _backup(hook, db, "20260101T0200Z", full, [full.location])
    assert inc.base == full.recovery_point_id
    assert inc.row_counts == {"t": 1500, "u": 10}
    assert inc.details["stored_bytes"] < full.details["stored_bytes"]

    result = hook.verify_backup(inc, chain=[full, inc])
    assert result.ok, result
    assert any("structure_only" in c for c in result.checks)

    restored = hook.restore_chain([full, inc], target_database=f"{db}_restored")
    assert restored.ok, restored.summary()
    assert restored.rows == {"t": 1500, "u": 10}
    assert all(restored.check_table.values())
    assert restored.duration_s > 0

    only_t = hook.restore_chain([full, inc], target_database=f"{db}_restored_t", tables=["t"])
    assert only_t.rows == {"t": 1500}
