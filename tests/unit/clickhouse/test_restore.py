"""What a restore reports."""

from __future__ import annotations

from backup_pipelines.clickhouse.restore import RestoreResult


def test_restore_result_reports_mismatches() -> None:
    result = RestoreResult(
        recovery_point_id="R",
        source_database="a",
        target_database="b",
        chain=["F", "R"],
        rows={"t": 9},
        expected_rows={"t": 10},
        check_table={"t": True},
        duration_s=1.5,
    )
    assert not result.ok and result.mismatches == {"t": (9, 10)}
    assert result.summary()["duration_s"] == 1.5
