"""A chain member's object deleted, resized or replaced in S3 (a bad lifecycle rule, a manual
clean-up): verify and the next snapshot find it with listings, fail the member and every point
built on it, the next snapshot is a new full, the RPO monitor warns naming the object, and the
newest point that is still verified restores every row.

Real backups (chDB -> moto S3) through the DAG's operators; only ``clock.utcnow`` is moved.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.runs import hour_floor

pytestmark = pytest.mark.integration

KIND = "clickhouse_snapshot"


def _dataset(clickhouse_client: Any, write_config: Any, example_config: dict[str, Any], db: str) -> None:
    """A partitioned table in its own database, snapshotted every hour, a full every 12 hours."""
    clickhouse_client.command(f"DROP DATABASE IF EXISTS {db}")
    clickhouse_client.command(f"CREATE DATABASE {db}")
    clickhouse_client.command(
        f"CREATE TABLE {db}.events (id UInt64, day Date, payload String) "
        "ENGINE = MergeTree PARTITION BY day ORDER BY id"
    )
    cfg = json.loads(json.dumps(example_config))
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-presence/",
            "s3_credentials": "connection",
            "full_every": "12h",
            "datasets": [{"name": db, "database": db, "tables": ["*"]}],
        }
    )
    write_config(cfg)


def _operators(db: str) -> tuple[Any, Any]:
    from backup_pipelines.clickhouse.operators import ClickHouseSnapshotOperator, ClickHouseVerifyOperator

    return ClickHouseSnapshotOperator(task_id="snapshot", dataset=db), ClickHouseVerifyOperator(
        task_id="verify", dataset=db
    )


def _context(slot: datetime) -> Any:
    return {"data_interval_start": slot - timedelta(hours=1), "data_interval_end": slot}


def _damage(s3: Any, catalog: Any, point: Any, how: str) -> str:
    """Damage the largest data object of ``point``; returns its s3:// URL."""
    from backup_pipelines.core.presence import object_key

    entry = max((o for o in point.objects if not o.key.endswith(".backup")), key=lambda o: o.size)
    bucket, key = object_key(point, entry)
    if how == "deleted":
        s3.delete_object(Bucket=bucket, Key=key)
    elif how == "resized":
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(entry.size + 7))
    else:  # replaced by another object of the same size: only its ETag tells
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(entry.size))
    return f"s3://{bucket}/{key}"


@pytest.mark.parametrize(
    ("how", "found_by"),
    [("deleted", "next snapshot"), ("resized", "verify"), ("replaced", "next snapshot")],
)
def test_a_damaged_chain_member_fails_its_chain_and_the_next_snapshot_is_a_full(
    embedded_stack: Any,
    clickhouse_client: Any,
    s3: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    found_by: str,
) -> None:
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.core import clock
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.errors import VerificationError
    from backup_pipelines.monitor.rpo import Target, measure

    DB = f"presence_{how}"  # one dataset (and catalog folder) per case
    _dataset(clickhouse_client, write_config, example_config, DB)
    now = {"now": datetime.now(UTC)}
    monkeypatch.setattr(clock, "utcnow", lambda: now["now"])
    snapshot, verify = _operators(DB)
    first = hour_floor(datetime.now(UTC)) - timedelta(hours=6)
    rows = 0

    def capture(n: int, *, verified: bool = True) -> None:
        nonlocal rows
        slot = first + timedelta(hours=n)
        now["now"] = slot + timedelta(minutes=2)
        day = (slot - timedelta(days=n % 3)).date()
        clickhouse_client.insert(
            f"{DB}.events",
            [(rows + i, day, b"\x00\xff" * (i % 5) if i % 2 else b"") for i in range(200)],
            column_names=["id", "day", "payload"],
        )
        rows += 200
        snapshot.execute(_context(slot))
        if verified:
            verify.execute(_context(slot))

    for n in range(3):  # F, I1, I2: one verified chain
        capture(n)
    catalog = Catalog.from_config(load_config())
    full, inc1, inc2 = catalog.list_points(KIND, DB).points
    assert full.base is None and inc2.base == inc1.recovery_point_id

    if found_by == "verify":
        capture(3, verified=False)  # I3 on I2, captured before the damage
        url = _damage(s3, catalog, full, how)
        with pytest.raises(VerificationError, match=f"chain member {full.recovery_point_id} is broken"):
            verify.execute(_context(first + timedelta(hours=3)))
        capture(4)  # no verified base left: a new full
    else:
        url = _damage(s3, catalog, full, how)
        capture(3)  # chooses I2, finds F broken, takes a full instead

    listing = catalog.list_points(KIND, DB)
    points = listing.by_id()
    newest = listing.points[-1]
    assert newest.base is None and newest.is_verified, "the next snapshot must be a new full"
    broken = points[full.recovery_point_id].verification
    assert broken.state == "failed" and url in (broken.detail or "")
    for point in listing.points[1:-1]:
        assert point.verification.state == "failed", point.recovery_point_id
        assert f"chain member {full.recovery_point_id} failed" in (point.verification.detail or "")
        assert url in (point.verification.detail or "")
    assert [p.recovery_point_id for p in listing.verified()] == [newest.recovery_point_id]

    age = measure(catalog, Target(KIND, DB, 3 * 3600), now=now["now"])
    assert age.newest_id == newest.recovery_point_id
    assert age.warning is not None and full.recovery_point_id in age.warning and url in age.warning

    result = RestoreService.from_config(load_config()).restore_chain(
        catalog.chain(newest), target_database=f"{DB}_restored_{how}"
    )
    assert result.ok and result.rows == {"events": rows}  # the new full holds every row
    restored = clickhouse_client.query(
        f"SELECT count(), sum(id), countIf(payload = '') FROM {DB}_restored_{how}.events"
    ).result_rows[0]
    live = clickhouse_client.query(
        f"SELECT count(), sum(id), countIf(payload = '') FROM {DB}.events"
    ).result_rows[0]
    assert restored == live
    clickhouse_client.command(f"DROP DATABASE IF EXISTS {DB}_restored_{how}")
