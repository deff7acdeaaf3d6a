"""The Backups pages' data: every configured dataset from the catalog's stored index
(``Catalog.list_points(fresh=False)``: one GET per dataset, no listing of its manifests),
effective states from ``core.chains``, drills from their reports, costs from the config's price
table. Read-only, but for a dataset without an index: the catalog builds it on first read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, Objectives
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Listing, Manifest
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.monitor.alerts import DAG_DATASET_KINDS, configured_schedules
from backup_pipelines.ui import cost
from backup_pipelines.ui.drills import DrillHistory, DrillOutcome
from backup_pipelines.ui.models import (
    AMBER_AT,
    CostPage,
    CostRow,
    DatasetCost,
    DatasetOverview,
    DatasetPage,
    Overview,
    PointRow,
    PriceRow,
    Status,
)

#: Drill reports read for the overview (the newest drills) and for a dataset's history.
OVERVIEW_DRILLS = 3
HISTORY_DRILLS = 20
RUNBOOKS = {
    DatasetKind.CLICKHOUSE_SNAPSHOT: "clickhouse-restore.md",
    DatasetKind.EMR_OUTPUT: "emr-output-recovery.md",
    DatasetKind.KAFKA_ARCHIVE: "kafka-event-recovery.md",
    DatasetKind.DEEP_ARCHIVE_EXPORT: "deep-archive-retrieval.md",
}
DAG_OF_KIND = {kind: dag_id for dag_id, kinds in DAG_DATASET_KINDS.items() for kind in kinds}


@dataclass(frozen=True)
class Protected:
    """A configured dataset and what the catalog holds for it."""

    kind: DatasetKind
    name: str
    objectives: Objectives
    listing: Listing

    @property
    def points(self) -> list[Any]:
        """Its points, oldest first: the index's entries where the catalog has them (no manifest read)."""
        entries = getattr(self.listing, "entries", None)
        return list(entries) if entries is not None else list(self.listing.points)

    def verified(self) -> list[Any]:
        states = self.listing.states()
        return [p for p in self.points if states[p.recovery_point_id].usable]


def size_of(point: Any) -> int:
    """Bytes of a point: a manifest's objects, or an index entry's total."""
    return point.size_bytes if isinstance(point, Manifest) else int(point.bytes)


class BackupsService:
    def __init__(
        self, cfg: BackupConfig, catalog: Catalog, drills: DrillHistory, *, now: datetime | None = None
    ) -> None:
        self.cfg, self.catalog, self.drills = cfg, catalog, drills
        self.now = now or clock.utcnow()

    @classmethod
    def from_config(
        cls, cfg: BackupConfig, *, now: datetime | None = None, s3: BackupS3Hook | None = None
    ) -> BackupsService:
        """``s3``: a hook to reuse (the app keeps one per process: a new boto3 client costs ~0.5 s)."""
        catalog = Catalog.from_config(cfg, s3=s3)
        drills = DrillHistory(catalog.s3, bucket=cfg.storage.backup_bucket, prefix=cfg.dr_drill.report_prefix)
        return cls(cfg, catalog, drills, now=now)

    # -- reading -----------------------------------------------------------------------------------
    def protected(self, only: tuple[str, str] | None = None) -> list[Protected]:
        """Every configured dataset (or one) with its listing; datasets are read in parallel."""
        wanted = [(k, n, o) for k, n, o in self.cfg.datasets() if only is None or (k, n) == only]
        if only is not None and not wanted:
            known = ", ".join(f"{k}/{n}" for k, n, _ in self.cfg.datasets())
            raise ConfigError(f"no configured dataset {only[0]}/{only[1]} (configured: {known})")
        with ThreadPoolExecutor(max_workers=min(8, len(wanted) or 1)) as pool:
            # The stored index as it is (one GET each): a page view must not list every manifest.
            listings = list(pool.map(lambda w: self.catalog.list_points(w[0], w[1], fresh=False), wanted))
        return [Protected(k, n, o, listing) for (k, n, o), listing in zip(wanted, listings, strict=True)]

    def schedule(self, kind: str) -> str:
        return configured_schedules(self.cfg).get(DAG_OF_KIND[kind], "")

    def next_capture(self, kind: str) -> datetime | None:
        from croniter import croniter

        schedule = self.schedule(kind)
        return croniter(schedule, self.now).get_next(datetime) if schedule else None

    def retention_days(self, kind: str) -> int | None:
        if kind == DatasetKind.CLICKHOUSE_SNAPSHOT:
            return self.cfg.clickhouse_snapshots.retention_days
        if kind == DatasetKind.EMR_OUTPUT:
            return self.cfg.emr_archive.lifecycle.expiration_days
        return None

    def transitions(self, kind: str) -> tuple[tuple[int, str], ...]:
        if kind == DatasetKind.EMR_OUTPUT:
            return tuple((t.days, t.storage_class) for t in self.cfg.emr_archive.lifecycle.transitions)
        return ()

    # -- the overview ------------------------------------------------------------------------------
    def overview(self) -> Overview:
        drills = self.drills.outcomes(limit=OVERVIEW_DRILLS)
        rows = [self.summarise(p, drills.get(f"{p.kind}/{p.name}", [])) for p in self.protected()]
        return Overview(generated_at=self.now, datasets=rows, catalog=self.catalog.url_for("", "", "")[:-7])

    def summarise(self, protected: Protected, drills: list[DrillOutcome]) -> DatasetOverview:
        listing, objectives = protected.listing, protected.objectives
        states = listing.states()
        verified = protected.verified()
        newest = verified[-1] if verified else None
        age = (self.now - newest.captured_at).total_seconds() if newest else None
        status, why = rpo_status(age, objectives.rpo)
        failed = [p for p in protected.points if states[p.recovery_point_id].state == "failed"]
        latest_failure = None
        if failed:
            reason = states[failed[-1].recovery_point_id].reason
            latest_failure = f"{failed[-1].recovery_point_id}: {reason}"
        items = cost.holdings(protected.points)
        return DatasetOverview(
            kind=protected.kind,
            dataset=protected.name,
            points=len(protected.points),
            verified=len(verified),
            failed=len(failed),
            invalid_manifests=len(listing.invalid),
            newest_verified=newest.recovery_point_id if newest else None,
            newest_verified_at=newest.captured_at if newest else None,
            age_seconds=age,
            rpo_seconds=objectives.rpo.total_seconds(),
            rto_seconds=objectives.rto.total_seconds(),
            status=status,
            status_reason=why,
            latest_failure=latest_failure,
            last_drill=drills[0] if drills else None,
            bytes_by_class=cost.bytes_by_class(items, self.now.date(), self.transitions(protected.kind)),
            next_capture=self.next_capture(protected.kind),
            schedule=self.schedule(protected.kind),
        )

    # -- one dataset -------------------------------------------------------------------------------
    def dataset(self, kind: str, name: str, *, limit: int = 300) -> DatasetPage:
        (protected,) = self.protected((kind, name))
        drills = self.drills.outcomes(limit=HISTORY_DRILLS).get(f"{kind}/{name}", [])
        listing = protected.listing
        window = self.retention_days(kind)
        shown = protected.points
        if window is not None:
            shown = [p for p in shown if p.captured_at >= self.now - timedelta(days=window)]
        by_id = {p.recovery_point_id: p for p in protected.points}
        rows = [point_row(p, listing, by_id, DatasetKind(kind)) for p in reversed(shown[-limit:])]
        return DatasetPage(
            overview=self.summarise(protected, drills),
            points=rows,
            total_points=len(protected.points),
            window_days=window,
            invalid=[f"{i.key}: {i.reason}" for i in listing.invalid],
            drills=drills,
            dag_id=DAG_OF_KIND[kind],
            runbook=RUNBOOKS.get(DatasetKind(kind)),
        )

    # -- cost --------------------------------------------------------------------------------------
    def costs(self) -> CostPage:
        table = self.cfg.costs
        tier = self.cfg.dr_drill.restore_tier
        rows: list[CostRow] = []
        datasets: list[DatasetCost] = []
        for p in self.protected():
            items = cost.holdings(p.points)
            moves = self.transitions(p.kind)
            for storage_class, size in cost.bytes_by_class(items, self.now.date(), moves).items():
                price = table.prices.of(storage_class)
                rows.append(
                    CostRow(
                        kind=p.kind,
                        dataset=p.name,
                        storage_class=storage_class,
                        bytes=size,
                        price_gb_month=price.storage_gb_month,
                        monthly=cost.monthly_storage(size, storage_class, table.prices),
                        minimum_days=price.minimum_days,
                    )
                )
            datasets.append(self._dataset_cost(p, items, tier))
        months = [
            (self.now + timedelta(days=cost.MONTH_DAYS * m)).strftime("%Y-%m")
            for m in range(1, table.forecast_months + 1)
        ]
        return CostPage(
            generated_at=self.now,
            currency=table.currency,
            region=table.region,
            source=table.source,
            as_of=table.as_of,
            restore_tier=tier,
            rows=rows,
            datasets=datasets,
            total_monthly=sum(r.monthly for r in rows),
            forecast_months=months,
            forecast_total=[sum(d.forecast[i] for d in datasets) for i in range(len(months))],
            prices=[
                PriceRow(storage_class=name.upper(), **price.model_dump()) for name, price in table.prices
            ],
        )

    def _dataset_cost(self, p: Protected, items: list[cost.Holding], tier: str) -> DatasetCost:
        table, moves, today = self.cfg.costs, self.transitions(p.kind), self.now.date()
        newest = p.verified()[-1:]
        chain = chain_of(newest[0], {q.recovery_point_id: q for q in p.points}) if newest else []
        restore = cost.holdings(chain)
        restore_cost = sum(
            cost.retrieval_cost(size, cls, tier, table.prices)
            for cls, size in cost.bytes_by_class(restore, today, moves).items()
        )
        period = self._period(p.kind)
        rate = cost.growth_rate(items, self.now, table.growth_window, period)
        largest = sorted(cost.holdings(newest), key=lambda h: -h.bytes)[:1]  # new points' class
        written = largest[0].storage_class if largest else (newest[0].storage_class if newest else "STANDARD")
        growth = cost.Growth(rate, written, self.retention_days(p.kind), moves)
        monthly = sum(
            cost.monthly_storage(size, cls, table.prices)
            for cls, size in cost.bytes_by_class(items, today, moves).items()
        )
        return DatasetCost(
            kind=p.kind,
            dataset=p.name,
            monthly=monthly,
            early_deletion=cost.early_deletion_charge(items, today, table.prices, moves),
            restore_bytes=sum(h.bytes for h in restore),
            restore_cost=restore_cost,
            growth_bytes_per_day=rate,
            forecast=cost.forecast(items, growth, self.now, table.forecast_months, table.prices),
        )

    def _period(self, kind: str) -> timedelta:
        """Time between two captures of the dataset's DAG (its cron), 1 day when unscheduled."""
        from croniter import croniter

        schedule = self.schedule(kind)
        if not schedule:
            return timedelta(days=1)
        cron = croniter(schedule, self.now)
        first = cron.get_next(datetime)
        return cron.get_next(datetime) - first


def rpo_status(age: float | None, rpo: timedelta) -> tuple[Status, str]:
    """Green within 75% of the RPO, amber up to it, red past it or with no verified point."""
    limit = rpo.total_seconds()
    if age is None:
        return "red", "no verified recovery point"
    if age < 0:
        return "green", f"newest verified point is dated {-age / 60:.0f} min in the future (clock skew?)"
    hours = f"{age / 3600:.1f} h old, RPO {limit / 3600:g} h"
    if age > limit:
        return "red", f"newest verified point is {hours}: RPO missed"
    if age > AMBER_AT * limit:
        return "amber", f"newest verified point is {hours}: over {AMBER_AT:.0%} of the RPO"
    return "green", f"newest verified point is {hours}"


def chain_of(point: Any, by_id: dict[str, Any]) -> list[Any]:
    """The points a restore of ``point`` needs (it is verified, so its chain is whole): full first."""
    chain = [point]
    while chain[0].base is not None and chain[0].base in by_id and len(chain) <= len(by_id):
        chain.insert(0, by_id[chain[0].base])
    return chain


def chain_position(point: Any, by_id: dict[str, Any]) -> tuple[str | None, int]:
    """The full a point's chain starts at (None when a base is missing or loops) and its depth."""
    seen, current, depth = {point.recovery_point_id}, point, 0
    while current.base is not None:
        base = by_id.get(current.base)
        if base is None or base.recovery_point_id in seen:
            return None, depth + 1
        seen.add(base.recovery_point_id)
        current, depth = base, depth + 1
    return current.recovery_point_id, depth


def point_row(point: Any, listing: Listing, by_id: dict[str, Any], kind: DatasetKind) -> PointRow:
    state = listing.state_of(point.recovery_point_id)
    root, depth = chain_position(point, by_id)
    role: Literal["full", "increment", "archive"] = "increment" if point.base else "full"
    if kind.is_archive:
        role = "archive"
    classes = {point.storage_class}
    producer: dict[str, str] = {}
    if isinstance(point, Manifest):  # a catalog without an index: the manifest itself
        classes = {o.storage_class or point.storage_class for o in point.objects} or classes
        producer = point.producer
    return PointRow(
        recovery_point_id=point.recovery_point_id,
        captured_at=point.captured_at,
        role=role,
        base=point.base,
        root=root,
        depth=depth,
        state=state.state,
        reason=state.reason,
        broken_member=state.broken_member,
        bytes=size_of(point),
        storage_class=", ".join(sorted(classes)),
        dag_id=producer.get("dag_id") or DAG_OF_KIND.get(kind),
        run_id=producer.get("run_id"),
    )
