"""Scripted recovery from the incremental backups: which point, which chain, where, and the checks.

``RestoreService.plan`` picks the point and checks the target (``clickhouse.pick``); ``run``
restores the chain and checks it (``restore_chain``, also what the DR drill calls), swapping the
tables in when an overwrite was confirmed, and times it (the achieved RTO).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.params import RestoreParams
from backup_pipelines.clickhouse.pick import check_target, choose_point, tables_of
from backup_pipelines.clickhouse.snapshot import KIND, find_dataset
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    BrokenChainError,
    UnsafeOperationError,
    VerificationError,
)
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.core.regions import Source, aws_conn_id, region_catalog

log = logging.getLogger(__name__)


class RestorePlan(BaseModel):
    """What a restore will do (the dry run shows exactly this)."""

    dataset: str
    recovery_point_id: str
    captured_at: datetime
    reason: str
    note: str | None = None
    candidates: list[str] = []
    chain: list[str]
    tables: list[str]
    target_database: str
    staging_database: str
    overwrite: bool
    expected_rows: dict[str, int]
    pending_mutations: dict[str, list[dict[str, str]]] = {}


@dataclass
class RestoreResult:
    """What a restore did, measured while merges of the restored tables were stopped.

    ``rows``: what ``count()`` shows per table; ``expected_rows``: the visible rows the manifest
    recorded (absent for manifests written before visible rows were recorded). ``part_rows``: the
    stored rows of the restored parts (``system.parts``); ``expected_part_rows``: the backed-up
    parts' stored rows where the manifest recorded them; ``expected_stored_rows``: the manifest's
    stored total per table (``row_counts``).
    """

    recovery_point_id: str
    source_database: str
    target_database: str
    chain: list[str]
    rows: dict[str, int]
    expected_rows: dict[str, int]
    check_table: dict[str, bool]
    duration_s: float
    part_rows: dict[str, list[int]] = field(default_factory=dict)
    expected_part_rows: dict[str, list[int]] = field(default_factory=dict)
    expected_stored_rows: dict[str, int] = field(default_factory=dict)
    pending_mutations: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    not_compared: dict[str, str] = field(default_factory=dict)

    @property
    def mismatches(self) -> dict[str, tuple[int, int]]:
        """Tables whose ``count()`` differs from the manifest's visible rows: table -> (got, expected)."""
        return {
            table: (self.rows.get(table, -1), expected)
            for table, expected in self.expected_rows.items()
            if self.rows.get(table, -1) != expected
        }

    @property
    def part_mismatches(self) -> dict[str, str]:
        """Tables whose restored parts' stored rows differ from the backed-up parts': table -> what.

        Part by part (sorted stored rows) where the manifest recorded them, else the table's total."""
        out = {}
        for table, total in self.expected_stored_rows.items():
            got = self.part_rows.get(table, [])
            parts = self.expected_part_rows.get(table)
            if (got != parts) if parts is not None else (sum(got) != total):
                shown = f"{total} in {len(parts)} part(s)" if parts is not None else f"{total} in total"
                out[table] = f"{sum(got)} stored rows in {len(got)} part(s), manifest {shown}"
        return out

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.part_mismatches and all(self.check_table.values())

    def describe_problems(self) -> str:
        return (
            f"visible rows (count() vs manifest) {self.mismatches}, stored part rows "
            f"{self.part_mismatches}, CHECK TABLE {self.check_table}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "recovery_point_id": self.recovery_point_id,
            "source_database": self.source_database,
            "target_database": self.target_database,
            "chain": self.chain,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "stored_rows": {t: sum(r) for t, r in self.part_rows.items()},
            "expected_stored_rows": self.expected_stored_rows,
            "pending_mutations": self.pending_mutations,
            "not_compared": self.not_compared,
            "check_table": self.check_table,
            "duration_s": round(self.duration_s, 3),
            "ok": self.ok,
        }


def expected_visible_rows(point: Manifest) -> dict[str, int]:
    """Visible rows per table the manifest recorded (none for manifests older than the record)."""
    return {str(t): int(n) for t, n in (point.details.get("visible_rows") or {}).items()}


def recorded_part_rows(point: Manifest, table: str) -> list[int] | None:
    """Stored rows of the table's backed-up parts, sorted; None when the manifest has no record."""
    recorded = (point.details.get("part_rows") or {}).get(table)
    return None if recorded is None else sorted(int(n) for n in recorded.values())


def not_compared(
    point: Manifest, wanted: Sequence[str], merging: Sequence[str], engines: dict[str, str]
) -> dict[str, str]:
    """Tables, or halves of the check, that cannot be compared, and why."""
    unknown = point.details.get("visible_rows_unknown") or {}
    visible = expected_visible_rows(point)
    out = {t: f"engine {engines.get(t, '?')} stores no rows" for t in wanted if t not in merging}
    for table in merging:
        if table not in visible:
            why = unknown.get(table, "the manifest predates that record")
            out[table] = f"visible rows not compared ({why}); stored rows compared"
    return out


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
    def from_config(cls, cfg: BackupConfig, *, source: Source = "primary") -> RestoreService:
        """On the primary region, or (``source="dr"``) on the DR region's catalog and replicas."""
        engine = ClickHouseEngine.from_config(cfg)
        if source == "dr":
            engine.aws_conn_id = aws_conn_id(cfg, "dr")  # before its S3 hook is first built
        return cls(cfg, engine, region_catalog(cfg, source, s3=engine.s3))

    def plan(self, params: RestoreParams) -> RestorePlan:
        """The point, its chain and the target, every rule checked before anything is created."""
        names = [d.name for d in self.cfg.clickhouse_snapshots.datasets]
        dataset = find_dataset(self.cfg, params.dataset or (names[0] if names else ""))
        listing = self.catalog.list_points(KIND, dataset.name)
        choice = choose_point(listing, dataset.name, point_id=params.recovery_point_id, at=params.target_time)
        point = choice.point
        chain = self.catalog.chain(point, listing=listing)
        stamp = clock.utcnow().strftime("%Y%m%dT%H%M%S")
        target = params.target_database or f"restore_{stamp}"
        overwrite = check_target(
            self.cfg,
            dataset=dataset.name,
            target=target,
            existing_tables=self.engine.existing_tables(target),
            confirm=params.confirm_overwrite,
        )
        tables = tables_of(point, params.tables)
        visible = expected_visible_rows(point)
        plan = RestorePlan(
            dataset=dataset.name,
            recovery_point_id=point.recovery_point_id,
            captured_at=point.captured_at,
            reason=choice.reason,
            note=choice.note,
            candidates=choice.candidates,
            chain=[m.recovery_point_id for m in chain],
            tables=tables,
            target_database=target,
            staging_database=f"restore_{stamp}" if overwrite else target,
            overwrite=overwrite,
            expected_rows={t: visible.get(t, point.row_counts.get(t, 0)) for t in tables},
            pending_mutations=dict(point.details.get("pending_mutations") or {}),
        )
        log.info("Recovery point: %s", plan.reason)
        if plan.note:
            log.warning("NOTE: %s", plan.note)
        log.info("Verified points of %s, newest first: %s", dataset.name, ", ".join(plan.candidates))
        return plan

    def run(self, plan: RestorePlan, *, tables_given: bool) -> dict[str, Any]:
        """Restore the plan's chain, check it, swap it in when overwriting; the task's summary."""
        dataset = find_dataset(self.cfg, plan.dataset)
        listing = self.catalog.list_points(KIND, plan.dataset)
        by_id = listing.by_id()
        chain = [by_id[rp] for rp in plan.chain]
        log.info("Restoring %s: %s", plan.recovery_point_id, plan.reason)
        if plan.note:
            log.warning("NOTE: %s", plan.note)
        result = self.restore_chain(
            chain, target_database=plan.staging_database, tables=plan.tables if tables_given else None
        )
        if not result.ok:
            raise VerificationError(
                f"restore of {plan.recovery_point_id} into {plan.staging_database} does not match its "
                f"manifest: {result.describe_problems()}"
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
        wanted = tables_of(point, tables)
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
        """Restore the newest point of ``chain`` (base first) into ``target_database``, and check it.

        Every member's ``.backup`` is checked first so a broken chain fails before anything is
        created. Tables already present in ``target_database`` are refused (use a fresh database,
        or swap). Two phases make the checks independent of merge timing: ``RESTORE ...
        structure_only`` creates the tables, their merges are stopped, the data is restored into
        them; ``count()``, the restored parts' rows and ``CHECK TABLE`` are compared with the
        manifest; merges resume after the checks. Mutations pending at capture are named, not
        carried over: RESTORE brings back the parts as backed up.
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
        try:
            self.restore_two_phases(
                point, source_db, wanted, target_database, poll_interval=poll_interval, timeout=timeout
            )
            result = self.measure(point, chain, target_database, wanted)
        finally:
            self.resume_merges(target_database, wanted)
        result.duration_s = time.monotonic() - started
        log.info(
            "Restored %s into %s in %.1fs: rows %s (manifest %s), stored rows %s, CHECK TABLE %s",
            point.recovery_point_id,
            target_database,
            result.duration_s,
            result.rows,
            result.expected_rows,
            {t: sum(r) for t, r in result.part_rows.items()},
            result.check_table,
        )
        if result.pending_mutations:
            log.warning(
                "Mutations pending at capture are not part of the restore (RESTORE brings back the "
                "parts as backed up, before them); re-issue them if the restored tables need them: %s",
                result.pending_mutations,
            )
        return result

    def restore_two_phases(
        self,
        point: Manifest,
        source_db: str,
        wanted: Sequence[str],
        target_database: str,
        *,
        poll_interval: float,
        timeout: float,
    ) -> None:
        """Tables first (``structure_only``), their merges stopped, then the data into them."""
        for phase in ("structure", "data"):
            if phase == "data":
                self.engine.set_merges(target_database, wanted, running=False)
            restore_id = self.engine.start_restore(
                database=source_db,
                tables=wanted,
                target_database=target_database,
                location=point.location,
                structure_only=phase == "structure",
                into_existing=phase == "data",
            )
            self.engine.wait(
                restore_id, poll_interval=poll_interval, timeout=timeout, what=f"restore ({phase})"
            )

    def measure(
        self, point: Manifest, chain: Sequence[Manifest], target_database: str, wanted: Sequence[str]
    ) -> RestoreResult:
        """Counts, restored parts and ``CHECK TABLE`` of the restored tables, merges stopped."""
        engines = self.engine.table_engines(target_database)
        merging = [t for t in wanted if "MergeTree" in engines.get(t, "")]
        visible = expected_visible_rows(point)
        parts = self.engine.active_part_rows(target_database)
        recorded = {t: recorded_part_rows(point, t) for t in merging}
        return RestoreResult(
            recovery_point_id=point.recovery_point_id,
            source_database=str(point.details.get("database", "")),
            target_database=target_database,
            chain=[m.recovery_point_id for m in chain],
            rows={t: self.engine.table_rows(target_database, t) for t in merging},
            expected_rows={t: visible[t] for t in merging if t in visible},
            check_table={t: self.engine.check_table(target_database, t) for t in merging},
            duration_s=0.0,
            part_rows={t: parts.get(t, []) for t in merging},
            expected_part_rows={t: r for t, r in recorded.items() if r is not None},
            expected_stored_rows={t: point.row_counts.get(t, 0) for t in merging},
            pending_mutations={
                t: m for t, m in (point.details.get("pending_mutations") or {}).items() if t in wanted
            },
            not_compared=not_compared(point, wanted, merging, engines),
        )

    def resume_merges(self, database: str, tables: Sequence[str]) -> None:
        try:
            self.engine.set_merges(database, tables, running=True)
        except Exception as exc:  # never hide the restore's own outcome
            log.warning("could not restart merges of %s: %s", database, exc)
