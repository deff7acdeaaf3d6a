"""Which recovery point each dataset's drill tests: the latest, or a random one within a window,
the way AWS Backup restore testing does, with the seed recorded so a pick can be repeated."""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.chains import resolve
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.index import IndexEntry
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.drill.params import DrillParams
from backup_pipelines.drill.results import PickMode, fmt_seconds

log = logging.getLogger(__name__)
SCRATCH_PREFIX = "drill_"


def seed_for(run_id: str, explicit: int | None = None) -> int:
    """The seed of a run: the explicit one, or one derived from the run id (a retry picks the same)."""
    if explicit is not None:
        return explicit
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)


def drill_id_for(run_id: str) -> str:
    """A short, identifier-safe name for this run's scratch database and topics."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9]+", "_", run_id.lower()).strip("_")[:24]
    return f"{stem}_{digest}"


Point = TypeVar("Point", Manifest, IndexEntry)  # a manifest, or its catalog index entry


def pick_recovery_point(
    points: Sequence[Point],
    *,
    mode: PickMode,
    window: timedelta,
    now: datetime,
    rng: random.Random,
) -> tuple[Point | None, int, str]:
    """(point, number of candidates, why): the latest, or a random one captured within ``window``.

    Points whose effective state is failed (they, or a member of their chain, failed
    verification: ``core.chains``) are not candidates: the drill tests what a restore would use.
    ``points`` are oldest first, as ``Catalog.list_points`` returns them.
    """
    states = resolve(points)
    usable = [p for p in points if states[p.recovery_point_id].state != "failed"]
    skipped = [p for p in points if states[p.recovery_point_id].state == "failed"][-3:]
    why_skipped = "; ".join(f"{p.recovery_point_id}: {states[p.recovery_point_id].reason}" for p in skipped)
    if mode == "latest":
        if not usable:
            return (
                None,
                0,
                "no recovery point whose chain is intact" + (f" ({why_skipped})" if skipped else ""),
            )
        return usable[-1], len(usable), "the newest recovery point"
    since = now - window
    candidates = [p for p in usable if p.captured_at >= since]
    if not candidates:
        return None, 0, f"no recovery point captured within {fmt_seconds(window.total_seconds())}"
    return rng.choice(candidates), len(candidates), f"random among {len(candidates)} within the window"


def sample(items: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """A reproducible sample of ``count`` items (all of them when there are fewer), in input order."""
    if len(items) <= count:
        return list(items)
    chosen = set(rng.sample(range(len(items)), count))
    return [item for i, item in enumerate(items) if i in chosen]


def scratch_database(drill_id: str, dataset: str) -> str:
    """``drill_<run>_<dataset>``: where a ClickHouse chain is restored (``RESTORE ... AS``)."""
    return f"{SCRATCH_PREFIX}{drill_id}_{dataset}"


def scratch_topic(drill_id: str, topic: str) -> str:
    return f"{SCRATCH_PREFIX}{drill_id}_{topic}"


class DatasetPlan(BaseModel):
    """The point one dataset's drill tests, and the archive objects it samples."""

    kind: DatasetKind
    dataset: str
    recovery_point_id: str | None
    candidates: int
    why: str
    sample: list[str] = []


class DrillPlan(BaseModel):
    """The whole drill's plan (XCom of the ``plan`` task)."""

    run_id: str
    drill_id: str
    pick: PickMode
    seed: int
    window_seconds: float
    started_at: datetime
    report_date: str
    datasets: dict[str, DatasetPlan]
    source: Literal["primary", "dr"] = "primary"  # the region whose catalog and copies are drilled

    def entry(self, kind: str, dataset: str) -> DatasetPlan:
        return self.datasets[f"{kind}/{dataset}"]


def plan_drill(
    cfg: BackupConfig, catalog: Catalog, params: DrillParams, *, run_id: str, now: datetime, due: datetime
) -> DrillPlan:
    """Pick one point per configured dataset (seeded: a retry picks the same)."""
    pick: PickMode = params.pick or cfg.dr_drill.pick
    seed = seed_for(run_id, params.seed)
    rng = random.Random(seed)
    datasets: dict[str, DatasetPlan] = {}
    for kind, name, _ in cfg.datasets():
        listing = catalog.list_points(kind, name)
        point, candidates, why = pick_recovery_point(  # on the index: the picked manifest alone is read
            listing.entries, mode=pick, window=cfg.dr_drill.random_window, now=now, rng=rng
        )
        picked = listing.manifest(point.recovery_point_id) if point and kind.is_archive else None
        keys = [o.key for o in picked.objects] if picked else []
        datasets[f"{kind}/{name}"] = DatasetPlan(
            kind=kind,
            dataset=name,
            recovery_point_id=point.recovery_point_id if point else None,
            candidates=candidates,
            why=why,
            sample=sample(keys, cfg.dr_drill.sample_objects, rng),
        )
        log.info("%s/%s: %s (%s)", kind, name, point.recovery_point_id if point else "nothing to drill", why)
    return DrillPlan(
        run_id=run_id,
        drill_id=drill_id_for(run_id),
        pick=pick,
        seed=seed,
        window_seconds=cfg.dr_drill.random_window.total_seconds(),
        started_at=now,
        report_date=due.date().isoformat(),
        datasets=datasets,
        source=params.source,
    )
