"""What the Backups pages show, as pydantic models: the HTML pages render them, ``/api/...`` returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from backup_pipelines.ui.drills import DrillOutcome

Status = Literal["green", "amber", "red"]
#: Age past this share of the RPO is amber (the next capture must not fail); past the RPO red.
AMBER_AT = 0.75


class DatasetOverview(BaseModel):
    """One configured dataset on the overview."""

    kind: str
    dataset: str
    points: int
    verified: int
    failed: int
    invalid_manifests: int
    newest_verified: str | None
    newest_verified_at: datetime | None
    age_seconds: float | None
    rpo_seconds: float
    rto_seconds: float
    status: Status
    status_reason: str
    latest_failure: str | None  # the newest failed point and why
    last_drill: DrillOutcome | None
    bytes_by_class: dict[str, int]
    next_capture: datetime | None
    schedule: str

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.dataset}"


class Overview(BaseModel):
    generated_at: datetime
    datasets: list[DatasetOverview]
    catalog: str  # s3://bucket/prefix


class PointRow(BaseModel):
    """One recovery point on the dataset page: where it sits in its chain and its effective state."""

    recovery_point_id: str
    captured_at: datetime
    role: Literal["full", "increment", "archive"]
    base: str | None
    root: str | None
    depth: int
    state: Literal["verified", "unverified", "failed"]
    reason: str | None
    broken_member: str | None
    bytes: int
    storage_class: str
    dag_id: str | None
    run_id: str | None


class DatasetPage(BaseModel):
    overview: DatasetOverview
    points: list[PointRow]  # newest first, at most ``shown``
    total_points: int
    window_days: int | None  # the retention window the timeline covers (None: kept forever)
    invalid: list[str]  # unusable manifests: key and reason
    drills: list[DrillOutcome]
    dag_id: str
    runbook: str | None


class CostRow(BaseModel):
    kind: str
    dataset: str
    storage_class: str
    bytes: int
    price_gb_month: float
    monthly: float
    minimum_days: int


class DatasetCost(BaseModel):
    kind: str
    dataset: str
    monthly: float
    early_deletion: float  # added if everything were deleted today (minimum durations)
    restore_bytes: int  # the newest verified point (and its chain)
    restore_cost: float  # its retrieval charge with the drill's restore tier
    growth_bytes_per_day: float
    forecast: list[float]


class PriceRow(BaseModel):
    storage_class: str
    storage_gb_month: float
    minimum_days: int
    retrieval_gb: dict[str, float]


class CostPage(BaseModel):
    generated_at: datetime
    currency: str
    region: str
    source: str
    as_of: str
    restore_tier: str
    rows: list[CostRow]
    datasets: list[DatasetCost]
    total_monthly: float
    forecast_months: list[str]  # labels (YYYY-MM of each month's end)
    forecast_total: list[float]
    prices: list[PriceRow]
