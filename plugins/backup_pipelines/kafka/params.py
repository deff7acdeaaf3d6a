"""The params of the ``kafka_archive_replay`` form, read into a typed model before any side effect.

Each bad value fails the run's first task with one line naming the param: a range whose end is
not after its start, a negative offset, a target topic name Kafka would refuse, a restore tier
or count out of range. What needs the
config or the catalog (a topic that is not configured, partitions the archive does not have, a
target another archive reads) is checked by ``kafka.replay.plan_replay``, also before anything.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from backup_pipelines.core.params import RunParams, parse_time

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


class ReplayParams(RunParams):
    """The ``kafka_archive_replay`` form."""

    topic: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    start_offset: int | None = Field(default=None, ge=0)
    end_offset: int | None = Field(default=None, ge=0)
    partitions: list[int] | None = None
    target_topic: str | None = None
    confirm_same_topic: bool = False
    dry_run: bool = True
    max_messages: int | None = Field(default=None, ge=1)
    restore_tier: Literal["Expedited", "Standard", "Bulk"] = "Bulk"
    restore_days: int = Field(default=1, ge=1)
    # Which region's catalog and archive files to replay from (storage.replica for "dr").
    source: Literal["primary", "dr"] = "primary"

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return parse_time(value)

    @field_validator("end_time", "end_offset")
    @classmethod
    def _end_after_start(cls, value: Any, info: ValidationInfo) -> Any:
        """A range is ``[start, end)``: an end at or before its start would replay nothing."""
        start_name = f"start_{info.field_name.removeprefix('end_')}" if info.field_name else ""
        start = info.data.get(start_name)
        if value is not None and start is not None and value <= start:
            raise ValueError(
                f"{_text(value)} is not after {start_name} {_text(start)} (the range is "
                f"[{start_name}, {info.field_name}): it would replay nothing)"
            )
        return value

    @field_validator("topic", "target_topic", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("target_topic")
    @classmethod
    def _legal_topic_name(cls, value: str | None) -> str | None:
        """A name Kafka accepts, checked here: found at the replay, it would fail after the restore."""
        if value is not None and (value in {".", ".."} or not _TOPIC_NAME.fullmatch(value)):
            raise ValueError(
                f"{value!r} is not a legal Kafka topic name (letters, digits, '.', '_', '-'; 1 to 249)"
            )
        return value

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
        return value or None

    @field_validator("partitions")
    @classmethod
    def _partition_ids(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(p < 0 for p in value):
            raise ValueError(f"{value} has a negative partition id")
        return value


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
