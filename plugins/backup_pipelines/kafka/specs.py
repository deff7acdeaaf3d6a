"""What the weekly archive's tasks pass each other (XCom), as typed models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Xcom(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartitionSpec(_Xcom):
    """What one mapped ``archive_partition`` task archives (XCom of ``retention_guard``)."""

    topic: str
    partition: int
    start_offset: int | None
    start_mode: Literal["continue", "earliest", "window_start"]
    # The cut: the partition's end offset observed when the plan ran (None: read to the end).
    end_offset: int | None = None
    cut_observed_at: datetime | None = None
    interval_start: datetime
    interval_end: datetime
    recovery_point_id: str
    previous: str | None
    existing: bool
    retention_warning: str | None = None


class PartitionResult(_Xcom):
    """What one partition's archive covered (XCom of ``archive_partition``)."""

    topic: str
    partition: int
    interval_start: datetime
    interval_end: datetime
    recovery_point_id: str
    previous: str | None
    retention_warning: str | None = None
    start_offset: int | None
    end_offset: int | None
    records: int
    files: list[dict[str, Any]]
    stopped_by: str
    no_record: dict[str, Any] = {}
    skipped_before_window: int = 0
    # Records stamped outside the window: before its start, at or after its end, without one.
    outside_window: dict[str, int] = {}
    cut_observed_at: datetime | None = None

    @classmethod
    def of(cls, spec: PartitionSpec, **fields: Any) -> PartitionResult:
        keep = spec.model_dump(include={"topic", "partition", "interval_start", "interval_end"})
        keep |= spec.model_dump(include={"recovery_point_id", "previous", "retention_warning"})
        keep |= spec.model_dump(include={"cut_observed_at"})
        return cls(**keep, **fields)


@dataclass
class GuardFinding:
    """What the retention guard found for one topic."""

    topic: str
    lost: list[dict[str, Any]] = field(default_factory=list)
    retention_warning: str | None = None
    # Partitions whose oldest record not yet archived is older than retention minus grace.
    at_risk: list[str] = field(default_factory=list)
