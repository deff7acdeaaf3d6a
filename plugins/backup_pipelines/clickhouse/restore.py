"""Scripted recovery from the incremental backups: which point, which chain, where, and the checks.

``RestoreService.plan`` picks the newest *verified* point captured at or before the asked time and
its chain, and decides the target; ``run`` restores the chain (ClickHouse reads the bases through
the increment's ``.backup``), compares rows per table with the manifest, runs ``CHECK TABLE`` and
times it (the achieved RTO). Restoring into the dataset's live database needs
``confirm_overwrite``: the chain goes to a staging database first, then the tables are swapped
in and the replaced ones stay in staging. ``restore_chain`` is also what the DR drill calls.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.params import RestoreParams
from backup_pipelines.clickhouse.snapshot import KIND, find_dataset
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    BrokenChainError,
    RecoveryPointNotFoundError,
    SourceNotFoundError,
    UnsafeOperationError,
    VerificationError,
)
from backup_pipelines.core.manifest import Manifest

log = logging.getLogger(__name__)


class RestorePlan(BaseModel):
    """What a restore will do (the dry run shows exactly this)."""

    dataset: str
    recovery_point_id: str
    captured_at: datetime
    chain: list[str]
    tables: list[str]
    target_database: str
    staging_database: str
    overwrite: bool
    expected_rows: dict[str, int]


@dataclass
class RestoreResult:
    """What a restore did: rows per table, their expected counts, CHECK TABLE results and wall time."""

    recovery_point_id: str
    source_database: str
    target_database: str
    chain: list[str]
    rows: dict[str, int]
    expected_rows: dict[str, int]
    check_table: dict[str, bool]
    duration_s: float

    @property
    def mismatches(self) -> dict[str, tuple[int, int]]:
        """Tables whose restored row count differs from the manifest: table -> (restored, expected)."""
        return {
            table: (self.rows.get(table, -1), expected)
            for table, expected in self.expected_rows.items()
            if self.rows.get(table, -1) != expected
        }

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(self.check_table.values())

    def summary(self) -> dict[str, Any]:
        return {
            "recovery_point_id": self.recovery_point_id,
            "source_database": self.source_database,
            "target_database": self.target_database,
            "chain": self.chain,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "check_table": self.check_table,
            "duration_s": round(self.duration_s, 3),
            "ok": self.ok,
        }


def check_chain_order(chain: Sequence[Manifest]) -> None:
    """A chain is its full backup first, then each increment on the one before it."""
    if not chain:
        raise BrokenChainError("a restore needs at least one recovery point")
    for previous, member in itertools.pairwise(chain):
        if member.base != previous.recovery_point_id:
            raise BrokenChainError(
                f"recovery point {member.recovery_point_id} depends on {member.base}, "
                f"not on {previous.recovery_point_id}: the chain is out of order"
            )
    if chain[0].base:
        raise BrokenChainError(f"chain starts at {chain[0].recovery_point_id}, which is not a full backup")


class RestoreService:
    """Restores of ClickHouse recovery points (the manual DAG and the DR drill)."""

    def __init__(self, cfg: BackupConfig, engine: ClickHouseEngine, catalog: Catalog) -> None:
        self.cfg = cfg
        self.engine = engine
        self.store = BackupStore(engine.s3)
        self.catalog = catalog

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> RestoreService:
        engine = ClickHouseEngine.from_config(cfg)
        return cls(cfg, engine, Catalog.from_config(cfg, s3=engine.s3))

    def plan(self, params: RestoreParams) -> RestorePlan:
        names = [d.name for d in self.cfg.clickhouse_snapshots.datasets]
        dataset = find_dataset(self.cfg, params.dataset or (names[0] if names else ""))
        at = params.target_time
        point = self.catalog.latest_verified(KIND, dataset.name, at_or_before=at)
        if point is None:
            raise RecoveryPointNotFoundError(
                f"no verified recovery point of {dataset.name!r}"
                + (f" captured at or before {at.isoformat()}" if at else "")
            )
        chain = self.catalog.chain(point)
        stamp = clock.utcnow().strftime("%Y%m%dT%H%M%S")
        target = params.target_database or f"restore_{stamp}"
        overwrite = target == dataset.database
        if overwrite and not params.confirm_overwrite:
            raise UnsafeOperationError(
                f"target_database {target!r} is the live database of {dataset.name!r}; "
                "set confirm_overwrite to restore over it (the replaced tables are kept aside)"
            )
        return RestorePlan(
            dataset=dataset.name,
            recovery_point_id=point.recovery_point_id,
            captured_at=point.captured_at,
            chain=[m.recovery_point_id for m in chain],
            tables=params.tables or list(point.details.get("tables") or point.row_counts),
            target_database=target,
            staging_database=f"restore_{stamp}" if overwrite else target,
            overwrite=overwrite,
            expected_rows=point.row_counts,
        )

    def run(self, plan: RestorePlan, *, tables_given: bool) -> dict[str, Any]:
        """Restore the plan's chain, check it, swap it in when overwriting; the task's summary."""
        dataset = find_dataset(self.cfg, plan.dataset)
        listing = self.catalog.list_points(KIND, plan.dataset)
        by_id = listing.by_id()
        chain = [by_id[rp] for rp in plan.chain]
        result = self.restore_chain(
            chain, target_database=plan.staging_database, tables=plan.tables if tables_given else None
        )
        if not result.ok:
            raise VerificationError(
                f"restore of {plan.recovery_point_id} into {plan.staging_database} does not match its "
                f"manifest: row count mismatches {result.mismatches}, CHECK TABLE {result.check_table}"
            )
        if plan.overwrite:
            self.engine.swap_tables(
                staging=plan.staging_database, live=plan.target_database, tables=list(result.rows)
            )
            log.info("Live tables replaced; the previous ones are in %s", plan.staging_database)
        rto = dataset.objectives.rto.total_seconds()
        log.info(
            "RTO: restored %s in %.1fs (objective %.0fs)%s",
            plan.recovery_point_id,
            result.duration_s,
            rto,
            "" if result.duration_s <= rto else " - OVER THE OBJECTIVE",
        )
        return {
            **result.summary(),
            "target_database": plan.target_database,
            "staging_database": plan.staging_database,
        }

    def tables_to_restore(
        self, point: Manifest, tables: Sequence[str] | None, target_database: str
    ) -> list[str]:
        """The tables to restore: all the point holds, or those asked; none may already be in the target."""
        available = list(point.details.get("tables") or point.row_counts)
        wanted = list(tables) if tables else available
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise SourceNotFoundError(
                f"recovery point {point.recovery_point_id} of {point.dataset!r} holds no table "
                f"{', '.join(unknown)} (it holds {', '.join(available)})"
            )
        clash = sorted(set(wanted) & set(self.engine.existing_tables(target_database)))
        if clash:
            raise UnsafeOperationError(
                f"target database {target_database!r} already has table(s) {', '.join(clash)}; "
                "restore into a new database (or confirm an overwrite, which swaps tables)"
            )
        return wanted

    def restore_chain(
        self,
        chain: Sequence[Manifest],
        *,
        target_database: str,
        tables: Sequence[str] | None = None,
        poll_interval: float = 0.5,
        timeout: float = 6 * 3600,
    ) -> RestoreResult:
        """Restore the newest point of ``chain`` (base first) into ``target_database``.

        Every member's ``.backup`` is checked first so a broken chain fails before anything is
        created. Tables already present in ``target_database`` are refused (use a fresh database,
        or swap). Row counts are compared with the manifest and ``CHECK TABLE`` is run on every table.
        """
        check_chain_order(chain)
        point = chain[-1]
        for member in chain:
            self.store.read_contents(member.location)  # raises when a member's .backup is missing
        source_db = str(point.details.get("database", ""))
        wanted = self.tables_to_restore(point, tables, target_database)
        log.info(
            "Restoring %s of %s (chain %s) into %s: %s",
            point.recovery_point_id,
            point.dataset,
            " -> ".join(m.recovery_point_id for m in chain),
            target_database,
            ", ".join(wanted),
        )
        started = time.monotonic()
        self.engine.create_database(target_database)
        restore_id = self.engine.start_restore(
            database=source_db, tables=wanted, target_database=target_database, location=point.location
        )
        self.engine.wait(restore_id, poll_interval=poll_interval, timeout=timeout, what="restore")
        rows = {t: self.engine.table_rows(target_database, t) for t in wanted}
        checks = {t: self.engine.check_table(target_database, t) for t in wanted}
        duration = time.monotonic() - started
        log.info(
            "Restored %s into %s in %.1fs: rows %s, CHECK TABLE %s",
            point.recovery_point_id,
            target_database,
            duration,
            rows,
            checks,
        )
        return RestoreResult(
            recovery_point_id=point.recovery_point_id,
            source_database=source_db,
            target_database=target_database,
            chain=[m.recovery_point_id for m in chain],
            rows=rows,
            expected_rows={t: point.row_counts[t] for t in wanted if t in point.row_counts},
            check_table=checks,
            duration_s=duration,
        )
