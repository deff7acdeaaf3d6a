"""The drill of a ClickHouse dataset: restore the picked point's chain into a scratch database,
compare rows per table with the manifest like with like (``count()`` against the visible rows it
recorded, the restored parts against the backed-up parts, merges of the restored tables stopped
while counted), ``CHECK TABLE``, and time it (the achieved RTO).

Two kinds of bad outcome are kept apart. A check that ran and found bad data (a chain member whose
manifest or objects are gone, a RESTORE that fails on a missing or damaged file, wrong row counts,
``CHECK TABLE``) is recorded as ``failed`` and marks the point failed. When the check could not
run (ClickHouse or S3 unreachable, the restore timed out) the point is left as it was and
``DrillInfrastructureError`` carries the finding to the report; Airflow retries the task.
"""

from __future__ import annotations

import logging
import time

from backup_pipelines.clickhouse.restore import RestoreResult, RestoreService
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    BackupFailedError,
    BrokenChainError,
    DrillInfrastructureError,
    SourceNotFoundError,
    UnsafeOperationError,
    VerificationError,
)
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.core.regions import region_catalog
from backup_pipelines.drill.checks import Recorder
from backup_pipelines.drill.plan import DrillPlan, scratch_database
from backup_pipelines.drill.probes import DrillProbes, classify_engine_failure, engine_message
from backup_pipelines.drill.results import (
    CHECK_CHAIN,
    CHECK_CHECK_TABLE,
    CHECK_RESTORE,
    CHECK_ROW_COUNT,
    CheckResult,
    DatasetResult,
)

log = logging.getLogger(__name__)


def row_checks(restored: RestoreResult, database: str) -> list[CheckResult]:
    """One row check per restored table, like with like: ``count()`` against the visible rows the
    manifest recorded, the restored parts' stored rows against the backed-up parts' (merges of the
    restored tables were stopped while they were counted, so no merge can change either)."""
    point = restored.recovery_point_id
    checks = []
    for table in sorted(restored.expected_stored_rows):
        got, expected = restored.rows.get(table, -1), restored.expected_rows.get(table)
        stored = sum(restored.part_rows.get(table, []))
        problem = restored.part_mismatches.get(table)
        visible_ok = expected is None or got == expected
        detail = (
            f"{got} row(s) restored, manifest {point} says {expected}"
            if expected is not None
            else f"{got} row(s) restored ({restored.not_compared.get(table, 'visible rows not recorded')})"
        )
        detail += f"; stored rows {stored}" + (f": {problem}" if problem else ", as backed up")
        checks.append(
            CheckResult(
                name=CHECK_ROW_COUNT,
                status="passed" if visible_ok and not problem else "failed",
                object=f"{database}.{table}",
                detail=detail,
            )
        )
    return checks


class ClickHouseDrill:
    """One ClickHouse dataset's drill (``run``); the scratch database is always dropped."""

    def __init__(self, cfg: BackupConfig, catalog: Catalog, plan: DrillPlan, probes: DrillProbes) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.plan = plan
        self.probes = probes
        self.recorder = Recorder(cfg, catalog, plan)

    @classmethod
    def from_config(cls, cfg: BackupConfig, plan: DrillPlan) -> ClickHouseDrill:
        return cls(
            cfg, region_catalog(cfg, plan.source), plan, DrillProbes.from_config(cfg, source=plan.source)
        )

    def run(self, kind: str, dataset: str) -> DatasetResult:
        """The dataset's result; raises ``DrillInfrastructureError`` (with ``.result``) when a check
        could not run."""
        entry = self.plan.entry(kind, dataset)
        result = self.recorder.start(entry)
        if entry.recovery_point_id is None:
            return self.recorder.pick_failed(result, entry)
        listing = self.catalog.list_points(kind, dataset)
        manifest = self.catalog.read(kind, dataset, entry.recovery_point_id)
        result.captured_at = manifest.captured_at
        try:
            chain = self.catalog.chain(manifest, listing=listing)
        except BrokenChainError as exc:
            result.checks.append(
                CheckResult(name=CHECK_CHAIN, status="failed", object=manifest.label, detail=str(exc))
            )
            return self.recorder.finish(manifest, result)
        database = scratch_database(self.plan.drill_id, dataset)
        try:
            result.checks += self.chain_checks(chain, manifest.label)
            if all(c.ok for c in result.checks):
                result.checks += self.restore_and_check(chain, database, result)
        except DrillInfrastructureError as exc:
            result.checks.append(
                CheckResult(
                    name=CHECK_RESTORE,
                    status="error",
                    object=manifest.label,
                    detail=f"check could not run: {exc}",
                )
            )
            self.recorder.measure_rpo(result)
            exc.result = result.model_dump(mode="json")
            raise
        finally:
            self.probes.drop_database_quietly(database)
        return self.recorder.finish(manifest, result)

    def chain_checks(self, chain: list[Manifest], point_name: str) -> list[CheckResult]:
        """Every object every chain member's manifest records is still in S3, with its size."""
        try:
            missing = self.probes.missing_objects(chain)
        except Exception as exc:  # listing failed: S3 unreachable or denied, not a finding about the data
            raise DrillInfrastructureError(f"could not list the chain's objects: {exc}") from exc
        if missing:
            shown = [
                CheckResult(
                    name=CHECK_CHAIN,
                    status="failed",
                    object=m.url,
                    detail=f"chain member {m.recovery_point_id} of {point_name}: {m.problem}",
                    recovery_point_id=m.recovery_point_id,
                )
                for m in missing[:20]
            ]
            if len(missing) > 20:
                shown[-1].detail += f" (and {len(missing) - 20} more)"
            return shown
        return [
            CheckResult(
                name=CHECK_CHAIN,
                status="passed",
                object=point_name,
                detail=" <- ".join(p.recovery_point_id for p in chain)
                + f": {sum(len(p.objects) for p in chain)} object(s) present",
            )
        ]

    def restore_and_check(
        self, chain: list[Manifest], database: str, result: DatasetResult
    ) -> list[CheckResult]:
        snapshots = self.cfg.clickhouse_snapshots
        point = chain[-1]
        started = time.monotonic()
        try:
            restored = RestoreService.from_config(self.cfg, source=self.plan.source).restore_chain(
                chain,
                target_database=database,
                poll_interval=min(snapshots.poll_interval.total_seconds(), 1.0),
                timeout=self.cfg.dr_drill.clickhouse_restore_timeout.total_seconds(),
            )
        except (BrokenChainError, VerificationError, SourceNotFoundError) as exc:
            return [CheckResult(name=CHECK_RESTORE, status="failed", object=point.location, detail=str(exc))]
        except UnsafeOperationError as exc:  # the scratch database is taken: the drill's problem
            raise DrillInfrastructureError(str(exc)) from exc
        except BackupFailedError as exc:
            return self._engine_failure(exc, chain, result, started)
        except Exception as exc:  # the client could not talk to ClickHouse or S3
            raise DrillInfrastructureError(
                f"RESTORE of {point.recovery_point_id}: {engine_message(exc)}"
            ) from exc
        result.rto_seconds = restored.duration_s
        result.bytes_restored = sum(m.size_bytes for m in chain)
        checks = [
            CheckResult(
                name=CHECK_RESTORE,
                status="passed",
                object=database,
                detail=f"chain {' <- '.join(restored.chain)} restored in {restored.duration_s:.1f}s",
            )
        ]
        checks += row_checks(restored, database)
        for table, ok in sorted(restored.check_table.items()):
            checks.append(
                CheckResult(
                    name=CHECK_CHECK_TABLE,
                    status="passed" if ok else "failed",
                    object=f"{database}.{table}",
                    detail="CHECK TABLE ok" if ok else "CHECK TABLE reported a problem",
                )
            )
        return checks

    def _engine_failure(
        self, exc: BackupFailedError, chain: list[Manifest], result: DatasetResult, started: float
    ) -> list[CheckResult]:
        """A RESTORE the engine refused: bad data (a failed check) or could not run (raised)."""
        point = chain[-1]
        message = engine_message(exc)
        kind = classify_engine_failure(message)
        probe = (
            None if kind == "data" else self.probes.storage_problem(chain) or self.probes.clickhouse_problem()
        )
        if kind == "infrastructure" or probe:
            if "still RESTORING" in message:
                result.rto_seconds = time.monotonic() - started
            raise DrillInfrastructureError(
                f"RESTORE of {point.recovery_point_id}: {message}" + (f"; {probe}" if probe else "")
            ) from exc
        # Every object is there, S3 and ClickHouse answer, and the engine still cannot restore it.
        return [
            CheckResult(
                name=CHECK_RESTORE,
                status="failed",
                object=point.location,
                detail=f"RESTORE failed: {message}",
            )
        ]
