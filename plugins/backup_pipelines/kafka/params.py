"""The params of the ``kafka_archive_replay`` form, read into a typed model before any side effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import field_validator

from backup_pipelines.core.params import RunParams, parse_time


class ReplayParams(RunParams):
    """The ``kafka_archive_replay`` form."""

    topic: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    partitions: list[int] | None = None
    target_topic: str | None = None
    confirm_same_topic: bool = False
    dry_run: bool = True
    max_messages: int | None = None
    restore_tier: str = "Bulk"
    restore_days: int = 1

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return parse_time(value)

    @field_validator("topic", "target_topic", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("partitions", mode="before")
    @classmethod
    def _partition_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            try:
                return [int(p) for p in text.split(",")]
            except ValueError:
                raise ValueError(f"{text!r} is not a comma-separated list of partition ids") from None
        return value
