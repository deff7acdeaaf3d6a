"""The params of the ClickHouse DAGs' forms, read into typed models before any side effect."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import field_validator, model_validator

from backup_pipelines.clickhouse.sql import SYSTEM_DATABASES
from backup_pipelines.core.params import RunParams, parse_time

#: What a ClickHouse database name may be without quoting: a letter or underscore, then letters,
#: digits and underscores.
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
DATABASE_NAME_RULE = (
    "letters A-Z a-z, digits 0-9 and underscore, not starting with a digit, at most 200 characters"
)
RECOVERY_POINT_ID = re.compile(r"^\d{8}T\d{4}Z$")


class SnapshotRunParams(RunParams):
    """The ``clickhouse_hourly_snapshot`` form."""

    retention_dry_run: bool = False


def check_database_name(value: str, *, what: str = "target_database") -> str:
    """A database a restore may create or write: no system database, plain identifier characters."""
    if value in SYSTEM_DATABASES or value.lower() in {"system", "information_schema"}:
        raise ValueError(f"{value!r} is a system database; restore into a database of your own")
    if not DATABASE_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a database name this DAG writes; {what} allows {DATABASE_NAME_RULE}"
        )
    return value


class RestoreParams(RunParams):
    """The ``clickhouse_restore`` form."""

    dataset: str | None = None
    tables: list[str] = []
    recovery_point_id: str | None = None
    target_time: datetime | None = None
    target_database: str | None = None
    confirm_overwrite: str | None = None
    dry_run: bool = False
    # Read by backup_pipelines.recovery's task after the restore: re-feed the ingest events since
    # the point's recorded offsets (ClickHouse datasets with an ``ingest`` config).
    replay_since_capture: bool = False
    # Which region's catalog and replicas to restore from (storage.replica for "dr").
    source: Literal["primary", "dr"] = "primary"

    @field_validator("target_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return None if isinstance(value, str) and value.strip().lower() == "latest" else parse_time(value)

    @field_validator("dataset", "target_database", "recovery_point_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("confirm_overwrite", mode="before")
    @classmethod
    def _confirm_names_a_database(cls, value: Any) -> Any:
        if value is False or value is None or (isinstance(value, str) and not value.strip()):
            return None
        if value is True:
            raise ValueError("name the database to overwrite (e.g. 'analytics'), not true")
        return str(value).strip()

    @field_validator("target_database")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        return None if value is None else check_database_name(value)

    @field_validator("recovery_point_id")
    @classmethod
    def _point_id(cls, value: str | None) -> str | None:
        if value is not None and not RECOVERY_POINT_ID.match(value):
            raise ValueError(f"{value!r} is not a recovery point id; ids look like 20261127T1100Z")
        return value

    @field_validator("tables", mode="before")
    @classmethod
    def _all_tables(cls, value: Any) -> Any:
        return [t for t in (value or []) if str(t).strip() not in ("", "*", "all")]

    @model_validator(mode="after")
    def _one_way_to_pick(self) -> RestoreParams:
        if self.recovery_point_id and self.target_time:
            raise ValueError(
                "give recovery_point_id or target_time, not both "
                f"(got {self.recovery_point_id} and {self.target_time.isoformat()})"
            )
        return self
