"""Which point a restore uses (and why), and where it may write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.clickhouse.pick import check_target, choose_point
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    ParamError,
    RecoveryPointNotFoundError,
    SourceNotFoundError,
    UnsafeOperationError,
)
from backup_pipelines.core.manifest import Listing, Manifest, Verification

DAY = datetime(2026, 11, 27, tzinfo=UTC)


def _point(
    hour: int, *, state: str = "verified", late: timedelta = timedelta(minutes=3, seconds=6)
) -> Manifest:
    end = DAY + timedelta(hours=hour)
    return Manifest(
        kind="clickhouse_snapshot",
        dataset="ho_pay",
        recovery_point_id=end.strftime("%Y%m%dT%H%MZ"),
        interval_start=end - timedelta(hours=1),
        interval_end=end,
        captured_at=end + late,
        location=f"s3://b/clickhouse/ho_pay/{end:%Y%m%dT%H%MZ}/",
        storage_class="STANDARD",
        row_counts={"t": hour},
        base=None,
        verification=Verification(state=state),  # type: ignore[arg-type]
    )


def _listing(*points: Manifest) -> Listing:
    return Listing(points=list(points))


def test_a_time_typed_as_the_slot_restores_the_point_before_and_says_so() -> None:
    listing = _listing(_point(10), _point(11), _point(12))
    choice = choose_point(listing, "ho_pay", point_id=None, at=DAY + timedelta(hours=12))
    assert choice.point.recovery_point_id == "20261127T1100Z"
    assert choice.reason == (
        "newest verified point captured at or before 2026-11-27T12:00:00Z: 20261127T1100Z, "
        "captured 2026-11-27T11:03:06Z"
    )
    assert choice.note is not None
    assert "lies in the slot of recovery point 20261127T1200Z" in choice.note
    assert "captured 2026-11-27T12:03:06Z, after the time given" in choice.note
    assert "give recovery_point_id 20261127T1200Z" in choice.note
    assert choice.candidates == [
        "20261127T1200Z (captured 2026-11-27T12:03:06Z)",
        "20261127T1100Z (captured 2026-11-27T11:03:06Z)",
        "20261127T1000Z (captured 2026-11-27T10:03:06Z)",
    ]


def test_a_capture_time_cut_to_whole_seconds_is_called_out_too() -> None:
    listing = _listing(_point(11), _point(12, late=timedelta(minutes=3, seconds=6, microseconds=500_000)))
    choice = choose_point(listing, "ho_pay", point_id=None, at=datetime(2026, 11, 27, 12, 3, 6, tzinfo=UTC))
    assert choice.point.recovery_point_id == "20261127T1100Z" and "20261127T1200Z" in (choice.note or "")
    exact = choose_point(listing, "ho_pay", point_id=None, at=DAY + timedelta(hours=12, minutes=4))
    assert exact.point.recovery_point_id == "20261127T1200Z" and exact.note is None


def test_by_id_and_latest() -> None:
    listing = _listing(_point(10), _point(11), _point(12, state="failed"))
    by_id = choose_point(listing, "ho_pay", point_id="20261127T1000Z", at=None)
    assert by_id.point.recovery_point_id == "20261127T1000Z"
    assert by_id.reason == "recovery point asked by id: 20261127T1000Z, captured 2026-11-27T10:03:06Z"
    latest = choose_point(listing, "ho_pay", point_id=None, at=None)
    assert latest.reason.startswith("latest verified point: 20261127T1100Z")
    with pytest.raises(RecoveryPointNotFoundError, match="20261127T1200Z of 'ho_pay' is failed"):
        choose_point(listing, "ho_pay", point_id="20261127T1200Z", at=None)
    with pytest.raises(
        RecoveryPointNotFoundError,
        match=r"20261127T0900Z of 'ho_pay' does not exist; verified points, newest first: 20261127T1100Z",
    ):
        choose_point(listing, "ho_pay", point_id="20261127T0900Z", at=None)


def _cfg(example_config: dict[str, Any]) -> BackupConfig:
    raw = dict(example_config)
    raw["clickhouse_snapshots"] = {
        **example_config["clickhouse_snapshots"],
        "datasets": [
            {"name": "ho_pay", "database": "hop_db", "tables": ["payments"]},
            {"name": "ho_ref", "database": "hor_db", "tables": ["*"]},
        ],
    }
    return BackupConfig.model_validate(raw)


def test_another_datasets_live_database_is_refused_naming_its_dataset(example_config: dict[str, Any]) -> None:
    cfg = _cfg(example_config)
    with pytest.raises(UnsafeOperationError, match="'hor_db' is the live database of dataset 'ho_ref';"):
        check_target(cfg, dataset="ho_pay", target="hor_db", existing_tables=[], confirm=None)
    with pytest.raises(
        UnsafeOperationError, match=r"'hop_db' is the live database of dataset 'ho_pay' \(the dataset"
    ):
        check_target(cfg, dataset="ho_pay", target="hop_db", existing_tables=["payments"], confirm=None)
    with pytest.raises(
        UnsafeOperationError, match="confirm_overwrite names 'hop_db' but the target database is 'hor_db'"
    ):
        check_target(cfg, dataset="ho_pay", target="hor_db", existing_tables=[], confirm="hop_db")
    assert check_target(cfg, dataset="ho_pay", target="hor_db", existing_tables=[], confirm="hor_db") is True


def test_a_non_empty_foreign_database_needs_its_name_and_an_absent_one_is_fine(
    example_config: dict[str, Any],
) -> None:
    cfg = _cfg(example_config)
    with pytest.raises(UnsafeOperationError, match=r"'scratch' is not empty \(it holds a, b\)"):
        check_target(cfg, dataset="ho_pay", target="scratch", existing_tables=["b", "a"], confirm=None)
    assert check_target(cfg, dataset="ho_pay", target="scratch", existing_tables=["a"], confirm="scratch")
    assert check_target(cfg, dataset="ho_pay", target="new_db", existing_tables=[], confirm=None) is False
    with pytest.raises(ParamError, match="'system' is a system database"):
        check_target(cfg, dataset="ho_pay", target="system", existing_tables=[], confirm="system")


def test_tables_asked_must_be_in_the_point() -> None:
    from backup_pipelines.clickhouse.pick import tables_of

    point = _point(10).model_copy(update={"details": {"tables": ["events", "users"]}})
    assert tables_of(point, []) == ["events", "users"] and tables_of(point, ["users"]) == ["users"]
    with pytest.raises(SourceNotFoundError, match=r"holds no table evnts \(it holds events, users\)"):
        tables_of(point, ["evnts", "users"])


def test_an_unknown_dataset_is_refused_before_the_catalog_is_read(example_config: dict[str, Any]) -> None:
    from unittest import mock

    from backup_pipelines.clickhouse.params import RestoreParams
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.core.errors import ConfigError

    engine, catalog = mock.Mock(), mock.Mock()
    service = RestoreService(_cfg(example_config), engine, catalog)
    with pytest.raises(
        ConfigError,
        match=r"dataset 'ho_pya' is not in clickhouse_snapshots.datasets \(configured: ho_pay, ho_ref\)",
    ):
        service.plan(RestoreParams.parse({"dataset": "ho_pya"}))
    assert not catalog.mock_calls and not engine.mock_calls
