"""RPO arithmetic: how old is each dataset's newest verified point, against the RPO it must meet.

The monitor DAG, the freshness sensor and trigger, and the SLA-miss email all read ages through
:func:`measure`, so they can never disagree about what "fresh" means.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, human_duration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One protected dataset and the RPO it must meet."""

    kind: str
    dataset: str
    rpo_seconds: float

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.dataset}"

    def to_list(self) -> list[Any]:
        """JSON-friendly form, for trigger and callback kwargs."""
        return [self.kind, self.dataset, self.rpo_seconds]

    @classmethod
    def from_list(cls, value: Sequence[Any]) -> Target:
        kind, dataset, rpo_seconds = value
        return cls(str(kind), str(dataset), float(rpo_seconds))


def targets(
    cfg: BackupConfig, *, kinds: Iterable[str] | None = None, dataset: str | None = None
) -> list[Target]:
    """Configured datasets, optionally only some kinds or one dataset name."""
    wanted = set(kinds) if kinds is not None else None
    return [
        Target(kind, name, objectives.rpo.total_seconds())
        for kind, name, objectives in cfg.datasets()
        if (wanted is None or kind in wanted) and (dataset is None or name == dataset)
    ]


@dataclass(frozen=True)
class Age:
    """How old a dataset's newest verified recovery point is, measured at ``measured_at``."""

    target: Target
    measured_at: datetime
    newest_id: str | None = None
    captured_at: datetime | None = None
    error: str | None = None
    # What the newest point's producer warned about, e.g. a Kafka topic whose retention.ms is
    # shorter than the archive window plus grace: the dataset is fresh, but at risk.
    warning: str | None = None
    # A breach that is not about age: Kafka records not archived yet that retention may delete.
    breach: str | None = None

    @property
    def age_seconds(self) -> float | None:
        if self.captured_at is None:
            return None
        return (self.measured_at - self.captured_at).total_seconds()

    @property
    def fresh(self) -> bool:
        """Within RPO. No verified point, or an unreadable catalog, counts as a breach."""
        age = self.age_seconds
        return self.breach is None and age is not None and age < self.target.rpo_seconds

    def describe(self) -> str:
        """One line a person reads in an email or a task log."""
        rpo = human_duration(self.target.rpo_seconds)
        if self.error:
            return f"{self.target.key}: age unknown ({self.error}); RPO {rpo}"
        if self.age_seconds is None:
            return f"{self.target.key}: no verified recovery point; RPO {rpo}"
        verdict = "within RPO" if self.fresh else "RPO BREACHED"
        return (
            f"{self.target.key}: newest verified recovery point {self.newest_id} captured "
            f"{self.captured_at:%Y-%m-%d %H:%M:%S} UTC, age {human_duration(self.age_seconds)}; "
            f"RPO {rpo}: {verdict}" + (f" ({self.breach})" if self.breach else "")
        )

    def as_status(self) -> dict[str, Any]:
        return {
            "kind": self.target.kind,
            "dataset": self.target.dataset,
            "rpo_seconds": self.target.rpo_seconds,
            "newest_verified": self.newest_id,
            "captured_at": self.captured_at.isoformat() if self.captured_at else None,
            "age_seconds": round(self.age_seconds, 3) if self.age_seconds is not None else None,
            "fresh": self.fresh,
            "error": self.error,
            "warning": self.warning,
            "breach": self.breach,
        }


def measure(catalog: Catalog, target: Target, *, now: datetime | None = None) -> Age:
    """The age of one dataset's newest *verified* point; a catalog error becomes a reported breach."""
    measured_at = now or clock.utcnow()
    try:
        newest = catalog.latest_verified(target.kind, target.dataset)
    except Exception as exc:  # an unreadable catalog is itself an RPO problem: report it, don't crash
        log.warning("RPO: cannot read the catalog of %s: %s", target.key, exc)
        return Age(target, measured_at, error=f"{type(exc).__name__}: {exc}")
    if newest is None:
        return Age(target, measured_at)
    return Age(
        target,
        measured_at,
        newest_id=newest.recovery_point_id,
        captured_at=newest.captured_at,
        warning=newest.details.get("retention_warning"),
    )


def measure_all(catalog: Catalog, items: Iterable[Target], *, now: datetime | None = None) -> list[Age]:
    at = now or clock.utcnow()
    return [measure(catalog, target, now=at) for target in items]


def gauge_name(target: Target) -> str:
    """Metric name of a dataset's age (StatsD names: letters, digits, dots, underscores, dashes)."""
    return f"backup_pipelines.rpo.age_seconds.{target.kind}.{target.dataset}"


def age_for_metrics(age: Age) -> float:
    """Seconds for ``Stats.gauge``; with no verified point, report a very large age (always a breach)."""
    seconds = age.age_seconds
    return seconds if seconds is not None else timedelta(days=3650).total_seconds()
