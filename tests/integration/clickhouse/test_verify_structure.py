"""Verify's structure check along a chain: ClickHouse's structure-only RESTORE runs for a full and
for the tables an increment changed or added, never for a CREATE statement its verified base holds
byte for byte, and a ``.backup`` naming another base than the manifest's is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from support.clickhouse import service

from backup_pipelines.core.manifest import Manifest, Verification

pytestmark = pytest.mark.integration

DB = "verify_structure"


@pytest.fixture
def chain(clickhouse_client: Any) -> Iterator[tuple[Any, list[Manifest]]]:
    """A full and three increments; before the third, t gains a column and u is created."""
    from support.clickhouse import backup_point

    clickhouse_client.command(f"DROP DATABASE IF EXISTS {DB}")
    clickhouse_client.command(f"CREATE DATABASE {DB}")
    clickhouse_client.command(
        f"CREATE TABLE {DB}.t (id UInt64, v String) ENGINE = ReplacingMergeTree ORDER BY id"
    )
    clickhouse_client.command(
        f"CREATE TABLE {DB}.s (id UInt64, n Int64) ENGINE = SummingMergeTree ORDER BY id"
    )
    snapshots = service()
    dataset = f"{DB}_{uuid.uuid4().hex[:8]}"  # a folder of its own per test
    points: list[Manifest] = []
    for n in range(4):
        clickhouse_client.insert(
            f"{DB}.t", [(n * 10 + i, "x" * i) for i in range(10)], column_names=["id", "v"]
        )
        if n == 2:  # t's statement changes, u is new; s stays as it was
            clickhouse_client.command(f"ALTER TABLE {DB}.t ADD COLUMN w Nullable(String)")
            clickhouse_client.command(f"CREATE TABLE {DB}.u (id UInt64) ENGINE = MergeTree ORDER BY id")
            clickhouse_client.insert(f"{DB}.u", [(1,), (2,)], column_names=["id"])
        points.append(
            backup_point(
                snapshots,
                dataset=dataset,
                database=DB,
                tables=["t", "s", "u"] if n >= 2 else ["t", "s"],
                rp_id=f"20260401T{n:02d}00Z",
                base=points[-1] if points else None,
                chain=list(points),
                write=False,
            )
        )
    yield snapshots, points
    clickhouse_client.command(f"DROP DATABASE {DB}")


def _verified(point: Manifest) -> Manifest:
    return point.model_copy(update={"verification": Verification(state="verified", checks=["test"])})


def _verifier(snapshots: Any) -> tuple[Any, list[list[str]]]:
    """The verifier, and the tables of every structure-only RESTORE it starts."""
    from backup_pipelines.clickhouse.verify import SnapshotVerifier

    verifier = SnapshotVerifier(snapshots.engine, snapshots.store)
    restored: list[list[str]] = []
    original = verifier.engine.start_restore

    def start_restore(**kwargs: Any) -> str:
        restored.append(sorted(kwargs["tables"]))
        return str(original(**kwargs))

    verifier.engine.start_restore = start_restore
    return verifier, restored


def test_only_new_or_changed_statements_are_restored_along_the_chain(chain: Any) -> None:
    snapshots, points = chain
    verifier, restored = _verifier(snapshots)
    assert all(p.details["backup_uuid"] for p in points)

    verified: list[Manifest] = []
    checks = []
    for point in points:
        result = verifier.verify(point, chain=[*verified, point])
        assert result.ok, result.detail
        checks.append(result.checks)
        verified.append(_verified(point))

    assert restored == [["s", "t"], ["t", "u"]], "the full in full, then only the changed t and the new u"
    assert "RESTORE structure_only: 0 tables" in checks[1]
    assert any(
        f"2 tables' metadata byte for byte that of verified base {points[0].recovery_point_id}" in c
        for c in checks[1]
    )
    assert "RESTORE structure_only: 2 tables" in checks[2]
    assert any("1 tables' metadata" in c for c in checks[2])  # s
    assert "RESTORE structure_only: 0 tables" in checks[3]


def test_a_backup_naming_another_base_uuid_is_refused(chain: Any) -> None:
    snapshots, points = chain
    verifier, restored = _verifier(snapshots)
    full, inc = points[0], points[1]
    other = _verified(full)
    other.details = {**other.details, "backup_uuid": "00000000-0000-0000-0000-000000000000"}

    result = verifier.verify(inc, chain=[other, inc])

    assert not result.ok
    assert f"names base UUID {full.details['backup_uuid']}" in (result.detail or "")
    assert "UUID 00000000-0000-0000-0000-000000000000" in (result.detail or "")
    assert "ClickHouse would refuse to open the chain" in (result.detail or "")
    assert "testing" not in (result.detail or ""), "no credential from the .backup's base URL"
    assert restored == []


def test_bases_without_a_recorded_uuid_or_not_verified_are_restored_in_full(chain: Any) -> None:
    snapshots, points = chain
    verifier, restored = _verifier(snapshots)
    full, inc = points[0], points[1]
    older = _verified(full)
    older.details = {k: v for k, v in older.details.items() if k != "backup_uuid"}

    assert verifier.verify(inc, chain=[older, inc]).ok
    assert verifier.verify(inc, chain=[full, inc]).ok  # the base is not verified
    assert restored == [["s", "t"], ["s", "t"]]
