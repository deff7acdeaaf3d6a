"""What the backups cost: storage per dataset and class now, early-deletion and retrieval charges, and a
forecast from the growth the catalog shows. Pure functions over holdings and the config's price table.

Units: a GB is 2^30 bytes (how S3 bills), a month is 30 days (minimum-duration charges are prorated
by day over it). Classes are what the catalog records (per object, else per point), moved down by
the lifecycle transitions a dataset has (the EMR archive's) as the objects age.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from backup_pipelines.core.config.operations import StorageClassPrices
from backup_pipelines.core.manifest import Manifest

GB = 1024**3
MONTH_DAYS = 30


@dataclass(frozen=True)
class Holding:
    """Bytes of one dataset captured on one day, in the class they were written in."""

    day: date
    storage_class: str
    bytes: int


@dataclass(frozen=True)
class Growth:
    """How a dataset grows and ages: bytes per day, the class new points get, what happens to old ones."""

    bytes_per_day: float
    storage_class: str
    retention_days: int | None = None  # points older than this are deleted (None: kept)
    transitions: tuple[tuple[int, str], ...] = ()  # (days after capture, class), lifecycle order


def holdings(points: Iterable[Any]) -> list[Holding]:
    """A dataset's points as bytes per capture day and class: a manifest's objects may override its
    class; a catalog index entry (``core.index``) counts its point's bytes in the point's class."""
    totals: dict[tuple[date, str], int] = defaultdict(int)
    for point in points:
        day = point.captured_at.date()
        if not isinstance(point, Manifest):
            totals[(day, point.storage_class)] += int(point.bytes)
            continue
        for obj in point.objects:
            totals[(day, obj.storage_class or point.storage_class)] += obj.size
    return [Holding(day, cls, size) for (day, cls), size in sorted(totals.items()) if size]


def class_at(written: str, age_days: float, transitions: Sequence[tuple[int, str]]) -> str:
    """The class of an object ``age_days`` after it was written, after the lifecycle moved it."""
    current = written
    for days, storage_class in transitions:
        if age_days >= days:
            current = storage_class
    return current


def bytes_by_class(
    items: Iterable[Holding], today: date, transitions: Sequence[tuple[int, str]] = ()
) -> dict[str, int]:
    """Bytes stored per class today (after lifecycle transitions)."""
    found: dict[str, int] = defaultdict(int)
    for h in items:
        found[class_at(h.storage_class, (today - h.day).days, transitions)] += h.bytes
    return dict(sorted(found.items()))


def monthly_storage(size: int, storage_class: str, prices: StorageClassPrices) -> float:
    return size / GB * prices.of(storage_class).storage_gb_month


def early_deletion_charge(
    items: Iterable[Holding],
    today: date,
    prices: StorageClassPrices,
    transitions: Sequence[tuple[int, str]] = (),
) -> float:
    """What deleting everything today would add: the rest of each class's minimum storage duration.

    Counted from when an object entered its current class (its capture day, or its last transition).
    """
    total = 0.0
    for h in items:
        age = (today - h.day).days
        storage_class = class_at(h.storage_class, age, transitions)
        entered = max([d for d, c in transitions if age >= d and c == storage_class], default=0)
        price = prices.of(storage_class)
        remaining = price.minimum_days - (age - entered)
        if remaining > 0:
            total += h.bytes / GB * price.storage_gb_month * remaining / MONTH_DAYS
    return total


def retrieval_cost(size: int, storage_class: str, tier: str, prices: StorageClassPrices) -> float:
    """Retrieval charge of ``size`` bytes of a class with a restore tier (0 for classes read directly)."""
    per_gb = prices.of(storage_class).retrieval_gb
    return size / GB * float(per_gb.get(tier, per_gb.get("Standard", 0.0)))  # type: ignore[call-overload]


def growth_rate(items: Sequence[Holding], now: datetime, window: timedelta, min_span: timedelta) -> float:
    """Bytes per day captured within ``window`` before ``now``, over the span they cover.

    The span is at least ``min_span`` (a schedule's period), so one fresh monthly export does not
    read as a month's bytes a day.
    """
    start = (now - window).date()
    recent = [h for h in items if h.day > start]
    if not recent:
        return 0.0
    span_days = (now.date() - min(h.day for h in recent)).days + 1
    span = max(span_days, min_span.total_seconds() / 86400, 1.0)
    return sum(h.bytes for h in recent) / span


def forecast(
    items: Sequence[Holding],
    growth: Growth,
    now: datetime,
    months: int,
    prices: StorageClassPrices,
) -> list[float]:
    """Monthly storage cost at the end of each of the next ``months`` months (30 days each).

    Today's holdings age (lifecycle transitions, retention), and new bytes arrive at
    ``growth.bytes_per_day`` in ``growth.storage_class``, one chunk per day.
    """
    today = now.date()
    future = [
        Holding(today + timedelta(days=d), growth.storage_class, round(growth.bytes_per_day))
        for d in range(1, months * MONTH_DAYS + 1)
    ]
    costs = []
    for month in range(1, months + 1):
        end = today + timedelta(days=month * MONTH_DAYS)
        cost = 0.0
        for h in (*items, *future):
            age = (end - h.day).days
            if age < 0 or (growth.retention_days is not None and age > growth.retention_days):
                continue
            cost += monthly_storage(h.bytes, class_at(h.storage_class, age, growth.transitions), prices)
        costs.append(cost)
    return costs
