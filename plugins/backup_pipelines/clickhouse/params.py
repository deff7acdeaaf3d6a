"""The params of the ClickHouse DAGs' forms, read into typed models before any side effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import field_validator

from backup_pipelines.core.params import RunParams, parse_time


class SnapshotRunParams(RunParams):
    """The ``clickhouse_hourly_snapshot`` form."""

    retention_dry_run: bool = False


class RestoreParams(RunParams):
    """The ``clickhouse_restore`` form."""

    dataset: str | None = None
    tables: list[str] = []
    target_time: datetime | None = None
    target_database: str | None = None
    confirm_overwrite: bool = False
    dry_run: bool = False

    @field_validator("target_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return None if isinstance(value, str) and value.strip().lower() == "latest" else parse_time(value)

    @field_validator("dataset", "target_database", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tables", mode="before")
    @classmethod
    def _all_tables(cls, value: Any) -> Any:
        return [t for t in (value or []) if str(t).strip() not in ("", "*", "all")]
