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
from backup_pipelines.core.chains import ChainState
from backup_pipelines.core.config import BackupConfig, human_duration
from backup_pipelines.core.manifest import Listing

log = logging.getLogger(__name__)

#: How long a chain member found broken stays a warning of the monitor (retention then removes it).
BROKEN_CHAIN_WARNING = timedelta(days=1)


@dataclass(frozen=True)
class Target:
    """One protected dataset and the RPO it must meet, in one region: ``primary``, or ``dr`` (its
    copy in the DR region, against ``objectives.dr_rpo``: its own line, breach and emails)."""

    kind: str
    dataset: str
    rpo_seconds: float
    region: str = "primary"

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.dataset}" + ("" if self.region == "primary" else f"@{self.region}")

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


def dr_targets(cfg: BackupConfig) -> list[Target]:
    """Every dataset's copy in the DR region, against its DR-region RPO ([] with no replica)."""
    if cfg.storage.replica is None:
        return []
    return [
        Target(kind, name, objectives.effective_dr_rpo.total_seconds(), region="dr")
        for kind, name, objectives in cfg.datasets()
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
    # Points newer than the newest verified one, with why they do not count (at most five).
    not_counted: tuple[str, ...] = ()
    # Datasets with ``ingest``: what a restore with Kafka replay recovers now
    # (``recovery.effective.EffectiveRpo.as_status()``), next to the snapshot age above.
    effective: dict[str, Any] | None = None

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
        name = "DR-region RPO" if self.target.region == "dr" else "RPO"
        rpo = f"{name} {human_duration(self.target.rpo_seconds)}"
        where = " in the DR region" if self.target.region == "dr" else ""
        if self.error:
            return f"{self.target.key}: age unknown ({self.error}); {rpo}"
        if self.age_seconds is None:
            return f"{self.target.key}: no verified recovery point{where}; {rpo}" + self._why_newer()
        verdict = f"within {name}" if self.fresh else f"{name.upper()} BREACHED"
        return (
            f"{self.target.key}: newest verified recovery point{where} {self.newest_id} captured "
            f"{self.captured_at:%Y-%m-%d %H:%M:%S} UTC, age {human_duration(self.age_seconds)}; "
            f"{rpo}: {verdict}"
            + (f" ({self.breach})" if self.breach else "")
            + (self._why_newer() if not self.fresh else "")
            + (f"; effective RPO {self.effective_text}" if self.effective_text else "")
        )

    @property
    def effective_text(self) -> str | None:
        """The effective RPO in words (snapshot + Kafka replay), None without ``ingest``."""
        return str(self.effective["text"]) if self.effective else None

    def _why_newer(self) -> str:
        """Why newer points do not count, for a breach line ("" when there are none)."""
        if not self.not_counted:
            return ""
        return "; newer points that do not count: " + "; ".join(self.not_counted)

    def as_status(self) -> dict[str, Any]:
        return {
            "kind": self.target.kind,
            "dataset": self.target.dataset,
            "region": self.target.region,
            "rpo_seconds": self.target.rpo_seconds,
            "newest_verified": self.newest_id,
            "captured_at": self.captured_at.isoformat() if self.captured_at else None,
            "age_seconds": round(self.age_seconds, 3) if self.age_seconds is not None else None,
            "fresh": self.fresh,
            "error": self.error,
            "warning": self.warning,
            "breach": self.breach,
            "not_counted": list(self.not_counted),
            "effective_rpo": self.effective,
        }


def measure(catalog: Catalog, target: Target, *, now: datetime | None = None) -> Age:
    """The age of one dataset's newest *verified* point (its effective state: it and its whole
    chain verified); a catalog error becomes a reported breach. Newer points that do not count
    are listed with why, and a broken chain among them is a warning naming the broken member."""
    measured_at = now or clock.utcnow()
    try:
        listing = catalog.recent_points(target.kind, target.dataset)  # the index head: one GET
    except Exception as exc:  # an unreadable catalog is itself an RPO problem: report it, don't crash
        log.warning("RPO: cannot read the catalog of %s: %s", target.key, exc)
        return Age(target, measured_at, error=f"{type(exc).__name__}: {exc}")
    verified = [p for p in listing.verified_entries() if p.captured_at <= measured_at]
    newest = verified[-1] if verified else None
    states = listing.states()
    newer = [p for p in listing.entries if newest is None or p.captured_at > newest.captured_at]
    not_counted = tuple(
        f"{p.recovery_point_id}: {states[p.recovery_point_id].state} ({states[p.recovery_point_id].reason})"
        for p in newer[-5:]
    )
    warnings = [newest.retention_warning] if newest and newest.retention_warning else []
    warnings += _broken_chains(listing, states, since=measured_at - BROKEN_CHAIN_WARNING)
    return Age(
        target,
        measured_at,
        newest_id=newest.recovery_point_id if newest else None,
        captured_at=newest.captured_at if newest else None,
        warning="; ".join(warnings) or None,
        not_counted=not_counted,
    )


def _broken_chains(listing: Listing, states: dict[str, ChainState], *, since: datetime) -> list[str]:
    """A warning per chain member found broken since ``since`` (its own check failed), naming it,
    what broke it (the object, for a presence check) and how many points failed with it."""
    found = []
    for point in listing.entries:
        if point.own_state != "failed" or point.verified_at is None or point.verified_at < since:
            continue
        if states[point.recovery_point_id].broken_member != point.recovery_point_id:
            continue  # failed through its chain: the member that broke is named instead
        found.append(
            f"broken chain: recovery point {point.recovery_point_id} failed at "
            f"{point.verified_at:%Y-%m-%d %H:%M} UTC ({point.own_detail}); "
            f"{listing.failed_with(point.recovery_point_id)} point(s) built on it failed with it"
        )
    return found


def measure_all(catalog: Catalog, items: Iterable[Target], *, now: datetime | None = None) -> list[Age]:
    at = now or clock.utcnow()
    return [measure(catalog, target, now=at) for target in items]


def gauge_name(target: Target, metric: str = "age_seconds") -> str:
    """Metric name of a dataset's age (StatsD names: letters, digits, dots, underscores, dashes);
    the DR region's under ``backup_pipelines.dr_rpo.``."""
    family = "rpo" if target.region == "primary" else "dr_rpo"
    return f"backup_pipelines.{family}.{metric}.{target.kind}.{target.dataset}"


def age_for_metrics(age: Age) -> float:
    """Seconds for ``Stats.gauge``; with no verified point, report a very large age (always a breach)."""
    seconds = age.age_seconds
    return seconds if seconds is not None else timedelta(days=3650).total_seconds()
