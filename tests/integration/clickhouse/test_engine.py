"""The ClickHouse engine against the embedded stack: a real chain in S3, described, verified, restored."""

from __future__ import annotations

from typing import Any

import pytest
from support.clickhouse import backup_point, service

from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.clickhouse.restore import RestoreService
from backup_pipelines.clickhouse.verify import SnapshotVerifier

pytestmark = pytest.mark.integration


def test_chain_is_described_verified_and_restored(clickhouse_client: Any) -> None:
    db = "hook_test_1"
    clickhouse_client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    clickhouse_client.command(f"CREATE TABLE {db}.t (x UInt64, s String) ENGINE = MergeTree ORDER BY x")
    clickhouse_client.command(f"CREATE TABLE {db}.u (x UInt64) ENGINE = MergeTree ORDER BY x")
    clickhouse_client.insert(f"{db}.t", [(i, "a") for i in range(1000)], column_names=["x", "s"])
    clickhouse_client.insert(f"{db}.u", [(i,) for i in range(10)], column_names=["x"])
    snapshots = service()
    point = {"dataset": db, "database": db, "tables": ["t", "u"], "prefix": "hooktest/", "write": False}

    full = backup_point(snapshots, rp_id="20260101T0100Z", **point)
    assert full.row_counts == {"t": 1000, "u": 10}
    assert full.details["tables"] == ["t", "u"]
    assert full.software["clickhouse"]

    clickhouse_client.insert(f"{db}.t", [(i, "b") for i in range(1000, 1500)], column_names=["x", "s"])
    inc = backup_point(snapshots, rp_id="20260101T0200Z", base=full, chain=[full], **point)
    assert inc.base == full.recovery_point_id
    assert inc.row_counts == {"t": 1500, "u": 10}
    assert inc.details["stored_bytes"] < full.details["stored_bytes"]

    result = SnapshotVerifier(snapshots.engine, BackupStore(snapshots.engine.s3)).verify(
        inc, chain=[full, inc]
    )
    assert result.ok, result
    assert any("structure_only" in c for c in result.checks)

    restores = RestoreService(snapshots.cfg, snapshots.engine, snapshots.catalog)
    restored = restores.restore_chain([full, inc], target_database=f"{db}_restored")
    assert restored.ok, restored.summary()
    assert restored.rows == {"t": 1500, "u": 10}
    assert all(restored.check_table.values())
    assert restored.duration_s > 0

    only_t = restores.restore_chain([full, inc], target_database=f"{db}_restored_t", tables=["t"])
    assert only_t.rows == {"t": 1500}


def test_an_embedded_backup_returns_when_it_has_ended_and_a_failure_names_the_location(
    clickhouse_client: Any,
) -> None:
    """chDB's BACKUP is sent without ASYNC: when the statement returns, system.backups already
    says BACKUP_CREATED (no polling); a failed one raises with the location and ClickHouse's reason."""
    from backup_pipelines.core.errors import BackupFailedError

    db = "hook_test_blocking"
    clickhouse_client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    clickhouse_client.command(f"CREATE TABLE IF NOT EXISTS {db}.t (x UInt64) ENGINE = MergeTree ORDER BY x")
    clickhouse_client.insert(f"{db}.t", [(i,) for i in range(100)], column_names=["x"])
    engine = service().engine
    assert engine.is_embedded
    location = f"s3://{service().cfg.storage.backup_bucket}/blocking/{db}/1/"
    args = {"dataset": db, "rp_id": "20260101T0100Z", "database": db, "tables": ["t"], "location": location}

    backup_id = engine.start_backup(**args)

    status = engine.backup_status(backup_id)
    assert status is not None and status.status == "BACKUP_CREATED"
    with pytest.raises(BackupFailedError, match=rf"BACKUP of {db} to {location} failed: .*already exists"):
        engine.start_backup(**args)
    clickhouse_client.command(f"DROP DATABASE {db}")
