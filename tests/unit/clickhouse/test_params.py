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


@pytest.mark.parametrize("name", ["system", "information_schema", "INFORMATION_SCHEMA", "System"])
def test_system_databases_are_never_a_restore_target(name: str) -> None:
    with pytest.raises(ParamError, match=f"param target_database: '{name}' is a system database"):
        RestoreParams.parse({"target_database": name})


@pytest.mark.parametrize("name", ["x; DROP DATABASE crm", "1abc", "a-b", "café", "a b", "`x`"])
def test_database_names_outside_the_plain_identifier_charset_are_refused_saying_what_is_allowed(
    name: str,
) -> None:
    with pytest.raises(ParamError) as err:
        RestoreParams.parse({"target_database": name})
    message = str(err.value)
    assert message.startswith("param target_database: ") and repr(name) in message
    assert "letters A-Z a-z, digits 0-9 and underscore, not starting with a digit" in message
    assert RestoreParams.parse({"target_database": "_restore_2026"}).target_database == "_restore_2026"


def test_confirm_overwrite_names_a_database_and_an_id_or_a_time_not_both() -> None:
    assert RestoreParams.parse({"confirm_overwrite": " analytics "}).confirm_overwrite == "analytics"
    assert RestoreParams.parse({"confirm_overwrite": False}).confirm_overwrite is None
    with pytest.raises(ParamError, match="param confirm_overwrite: name the database to overwrite"):
        RestoreParams.parse({"confirm_overwrite": True})
    assert RestoreParams.parse({"recovery_point_id": "20261127T1200Z"}).recovery_point_id == "20261127T1200Z"
    with pytest.raises(ParamError, match="'12:00' is not a recovery point id; ids look like 20261127T1100Z"):
        RestoreParams.parse({"recovery_point_id": "12:00"})
    with pytest.raises(ParamError, match="^params: give recovery_point_id or target_time, not both"):
        RestoreParams.parse({"recovery_point_id": "20261127T1200Z", "target_time": "2026-11-27T12:00:00Z"})
