"""The restore form read into its params model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_pipelines.clickhouse.params import RestoreParams
from backup_pipelines.core.errors import ParamError


def test_restore_form_defaults_mean_latest_point_all_tables_new_database() -> None:
    params = RestoreParams.parse({"dataset": "analytics", "tables": ["*"], "target_time": "latest"})
    assert params.tables == [] and params.target_time is None and params.target_database is None
    assert RestoreParams.parse({"target_time": "2026-11-23T14:00:00Z"}).target_time == datetime(
        2026, 11, 23, 14, tzinfo=UTC
    )


def test_restore_form_refuses_a_time_that_is_not_iso_8601() -> None:
    with pytest.raises(ParamError, match="param target_time: 'yesterday' is not an ISO 8601 time"):
        RestoreParams.parse({"target_time": "yesterday"})
