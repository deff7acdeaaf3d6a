"""Operators of the hourly ClickHouse snapshot and of the manual restore; I/O is in the hook and catalog.

- ``ClickHouseSnapshotOperator``: one dataset, one slot (the run's data interval end): full or
  incremental ``BACKUP ... ASYNC``, a deferrable wait (in-process for chDB), then the manifest, last.
- ``ClickHouseVerifyOperator``: checks the slot's backup and marks its manifest verified or failed.
- ``ClickHouseRestoreOperator``: newest verified point at or before a time, whole chain, row counts,
  ``CHECK TABLE`` and the restore's wall time (RTO).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import (
    BackupFailedError,
    BrokenChainError,
    ConfigError,
    RecoveryPointNotFoundError,
    UnsafeOperationError,
    VerificationError,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.clickhouse.engine import BackupStatus, ClickHouseBackupHook
    from backup_pipelines.core.catalog import Catalog, Listing, Manifest
    from backup_pipelines.core.config import BackupConfig, ClickHouseDataset

KIND = "clickhouse_snapshot"


# -- small parsing helpers (params render as text) ------------------------------------------------
def _flag(value: bool | str | None) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _optional(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text in ("", "None", "null", "latest") else text


def _tables(value: Any) -> list[str]:
    """A list param rendered as text ("['a', 'b']", "a,b") or a real list -> table names."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).strip().strip("[]").replace("'", "").replace('"', "").split(",")
    return [item.strip() for item in items if item.strip() and item.strip() not in ("*", "all")]


def _time(value: Any, name: str) -> datetime | None:
    from datetime import UTC

    text = _optional(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-11-23T14:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- shared plumbing -----------------------------------------------------------------------------
def _dataset(cfg: BackupConfig, name: str) -> ClickHouseDataset:
    for dataset in cfg.clickhouse_snapshots.datasets:
        if dataset.name == name:
            return dataset
    known = ", ".join(d.name for d in cfg.clickhouse_snapshots.datasets) or "none"
    raise ConfigError(f"dataset {name!r} is not in clickhouse_snapshots.datasets (configured: {known})")


def _hook(cfg: BackupConfig) -> ClickHouseBackupHook:
    from backup_pipelines.clickhouse.engine import ClickHouseBackupHook

    section = cfg.clickhouse_snapshots
    return ClickHouseBackupHook(
        clickhouse_conn_id=cfg.connections.clickhouse,
        aws_conn_id=cfg.connections.aws,
        credentials=section.s3_credentials,
        on_cluster=section.on_cluster,
    )


def slot_of(context: Context) -> tuple[datetime | None, datetime]:
    """(interval start, interval end) of the run; a manual run without one gets the hour it was due."""
    from backup_pipelines.dagkit import run_after
    from backup_pipelines.dev.sample_data import hour_floor

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if end is None:
        return None, hour_floor(run_after(context))
    return start, end


@dataclass
class SnapshotPlan:
    """What one snapshot task does; plain JSON (it rides along a deferral), never a secret."""

    dataset: str
    database: str
    tables: list[str]
    rp_id: str
    location: str
    base_id: str | None
    chain_locations: list[str]
    captured_at: str
    interval_start: str | None
    interval_end: str
    backup_id: str = ""


def choose_base(
    points: Sequence[Manifest], chains: dict[str, list[Manifest]], *, now: datetime, full_every: timedelta
) -> Manifest | None:
    """The base of the next increment, or None for a full backup.

    Only a *verified* point whose whole chain is intact can be a base; the newest such one is
    chosen, and a chain whose full backup is ``full_every`` old or older gets a fresh full.
    """
    for point in sorted(points, key=lambda p: p.captured_at, reverse=True):
        if not point.is_verified or point.captured_at > now:
            continue
        chain = chains.get(point.recovery_point_id)
        if not chain or not all(m.is_verified for m in chain):
            continue
        if now - chain[0].captured_at >= full_every:
            return None
        return point
    return None


def _summary(manifest: Manifest, *, action: str) -> dict[str, Any]:
    return {
        "action": action,
        "dataset": manifest.dataset,
        "recovery_point_id": manifest.recovery_point_id,
        "base": manifest.base,
        "captured_at": manifest.captured_at.isoformat(),
        "row_counts": manifest.row_counts,
        "stored_bytes": manifest.size_bytes,
        "verification": manifest.verification.state,
    }


class ClickHouseSnapshotOperator(BaseOperator):
    """Back up one dataset for the run's slot: full every ``full_every``, incremental in between.

    :param dataset: a name from ``clickhouse_snapshots.datasets``
    :param deferrable: wait for the backup in the triggerer; None (default) defers unless the
        ClickHouse connection is embedded chDB, whose backup runs inside this process.
    """

    template_fields: Sequence[str] = ("dataset",)

    def __init__(
        self,
        *,
        dataset: str,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.engine import backup_location, recovery_point_id
        from backup_pipelines.core import catalog as catalog_module

        cfg = load_config()
        section = cfg.clickhouse_snapshots
        dataset = _dataset(cfg, self.dataset)
        hook = _hook(cfg)
        hook.check_storage(cfg.storage.backup_bucket)
        catalog = hook.catalog(cfg)
        start, end = slot_of(context)
        rp_id = recovery_point_id(end)
        location = backup_location(cfg.storage.backup_bucket, section.prefix, dataset.name, rp_id)

        existing = catalog.get(KIND, dataset.name, rp_id)
        if existing is not None and existing.verification.state != "failed":
            self.log.info(
                "Slot %s of %s already captured at %s (%s): nothing to do",
                rp_id,
                dataset.name,
                existing.captured_at.isoformat(),
                existing.verification.state,
            )
            return _summary(existing, action="noop")
        listing = catalog.list_points(KIND, dataset.name)
        if existing is not None:
            location = self._retake_location(existing, listing, cfg.storage.backup_bucket, section.prefix)

        reattach = None if hook.is_embedded else hook.running_backup(dataset.name, rp_id)
        if reattach is None:
            leftovers = hook.delete_location(location)
            if leftovers:
                self.log.info("Removed %d objects of an earlier crashed attempt at %s", leftovers, location)
        chains: dict[str, list[Manifest]] = {}
        for point in listing.verified():
            try:
                chains[point.recovery_point_id] = catalog.chain(point, listing=listing)
            except BrokenChainError as exc:
                self.log.warning("Not a base candidate: %s", exc)
        now = catalog_module.utcnow()
        base = choose_base(
            [p for p in listing.points if p.recovery_point_id != rp_id],
            chains,
            now=now,
            full_every=section.full_every,
        )
        tables = hook.resolve_tables(dataset.database, dataset.tables)
        plan = SnapshotPlan(
            dataset=dataset.name,
            database=dataset.database,
            tables=tables,
            rp_id=rp_id,
            location=location,
            base_id=base.recovery_point_id if base else None,
            chain_locations=[m.location for m in chains[base.recovery_point_id]] if base else [],
            captured_at=now.isoformat(),
            interval_start=start.isoformat() if start else None,
            interval_end=end.isoformat(),
        )
        if end < now - timedelta(hours=2):
            self.log.info("Backfill of slot %s: the backup captures the data as of now (%s)", rp_id, now)
        if reattach:
            self.log.info("Re-attaching to backup %s of this slot, still running on the server", reattach)
            plan.backup_id = reattach
        else:
            plan.backup_id = hook.start_backup(
                dataset=dataset.name,
                rp_id=rp_id,
                database=dataset.database,
                tables=tables,
                location=location,
                base_location=base.location if base else None,
            )
        defer = self.deferrable if self.deferrable is not None else not hook.is_embedded
        if defer and hook.is_embedded:
            self.log.warning("chDB runs the backup in this process: waiting here instead of deferring")
            defer = False
        if defer:
            from backup_pipelines.clickhouse.triggers import ClickHouseBackupTrigger

            self.defer(
                trigger=ClickHouseBackupTrigger(
                    clickhouse_conn_id=cfg.connections.clickhouse,
                    backup_id=plan.backup_id,
                    poll_interval=section.poll_interval.total_seconds(),
                    timeout_at=time.time() + section.backup_timeout.total_seconds(),
                ),
                method_name="execute_complete",
                kwargs={"plan": asdict(plan)},
            )
        status = hook.wait(
            plan.backup_id,
            poll_interval=section.poll_interval.total_seconds(),
            timeout=section.backup_timeout.total_seconds(),
        )
        return self._finish(cfg, hook, catalog, plan, status)

    def execute_complete(
        self, context: Context, event: dict[str, Any], plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        from backup_pipelines.clickhouse.engine import BackupStatus

        if plan is None:
            raise BackupFailedError("the deferred snapshot lost its plan; the retry starts over")
        if event.get("status") not in ("BACKUP_CREATED",):
            raise BackupFailedError(
                f"backup {event.get('id')} of {plan['dataset']} ended {event.get('status')}: "
                f"{event.get('error') or 'no error text'}"
            )
        cfg = load_config()
        status = BackupStatus(
            id=str(event["id"]),
            status=str(event["status"]),
            error="",
            num_files=int(event.get("num_files", 0)),
            total_size=int(event.get("total_size", 0)),
        )
        hook = _hook(cfg)
        return self._finish(cfg, hook, hook.catalog(cfg), SnapshotPlan(**plan), status)

    def _finish(
        self,
        cfg: BackupConfig,
        hook: ClickHouseBackupHook,
        catalog: Catalog,
        plan: SnapshotPlan,
        status: BackupStatus,
    ) -> dict[str, Any]:
        base = catalog.read(KIND, plan.dataset, plan.base_id) if plan.base_id else None
        manifest = hook.describe(
            dataset=plan.dataset,
            database=plan.database,
            rp_id=plan.rp_id,
            location=plan.location,
            status=status,
            base=base,
            chain_locations=plan.chain_locations,
            captured_at=datetime.fromisoformat(plan.captured_at),
            interval_start=datetime.fromisoformat(plan.interval_start) if plan.interval_start else None,
            interval_end=datetime.fromisoformat(plan.interval_end),
            full=base is None,
        )
        catalog.write(manifest)  # last: the recovery point exists from here on
        self.log.info(
            "Captured %s %s of %s: %d rows in %d tables, %d bytes stored (%s)",
            manifest.details["backup_type"],
            plan.rp_id,
            plan.dataset,
            sum(manifest.row_counts.values()),
            len(manifest.row_counts),
            manifest.size_bytes,
            f"base {plan.base_id}" if plan.base_id else "no base",
        )
        return _summary(manifest, action="captured")

    def _retake_location(self, failed: Manifest, listing: Listing, bucket: str, prefix: str) -> str:
        """Where to capture a slot again whose point failed verification.

        Never delete the failed copy here: it may still hold data a disaster would want, and
        increments may point at it. The retake goes to a new folder; the failed copy becomes an
        orphan that only retention sweeps (after orphan_grace, once the slot is captured again).
        """
        from backup_pipelines.clickhouse.engine import backup_location
        from backup_pipelines.core import catalog as catalog_module

        rp_id = failed.recovery_point_id
        dependents = sorted(p.recovery_point_id for p in listing.points if p.base == rp_id)
        if dependents:
            raise UnsafeOperationError(
                f"slot {rp_id} of {failed.dataset} failed verification ({failed.verification.detail}) "
                f"but recovery points {', '.join(dependents)} are increments on it; it is kept as it "
                "is, and the next full backup starts a new chain"
            )
        location = backup_location(
            bucket, prefix, failed.dataset, f"{rp_id}.retake-{catalog_module.utcnow():%Y%m%dT%H%M%S}"
        )
        self.log.warning(
            "Slot %s failed verification before (%s); taking it again at %s; the failed copy at %s "
            "is kept for retention to sweep",
            rp_id,
            failed.verification.detail,
            location,
            failed.location,
        )
        return location


class ClickHouseVerifyOperator(BaseOperator):
    """Verify the slot's backup (status, file listing, row counts, structure-only restore)."""

    template_fields: Sequence[str] = ("dataset",)

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.clickhouse.engine import recovery_point_id

        cfg = load_config()
        dataset = _dataset(cfg, self.dataset)
        hook = _hook(cfg)
        catalog = hook.catalog(cfg)
        rp_id = recovery_point_id(slot_of(context)[1])
        manifest = catalog.get(KIND, dataset.name, rp_id)
        if manifest is None:
            raise RecoveryPointNotFoundError(
                f"no manifest for slot {rp_id} of {dataset.name}: the snapshot did not complete"
            )
        if manifest.is_verified:
            self.log.info("Slot %s of %s is already verified: nothing to do", rp_id, dataset.name)
            return _summary(manifest, action="noop")
        chain = catalog.chain(manifest)
        result = hook.verify_backup(manifest, chain=chain)
        updated = catalog.mark_verification(
            manifest, state="verified" if result.ok else "failed", checks=result.checks, detail=result.detail
        )
        for check in result.checks:
            self.log.info("check passed: %s", check)
        if not result.ok:
            raise VerificationError(
                f"backup {rp_id} of {dataset.name} failed verification: {result.detail}; "
                "it will never be used as a base"
            )
        return _summary(updated, action="verified")


class ClickHouseRestoreOperator(BaseOperator):
    """Restore the newest verified point at or before ``target_time`` (default: latest).

    The whole chain is restored into ``target_database`` (default a new ``restore_<ts>``); restoring
    into the dataset's live database needs ``confirm_overwrite`` and swaps the restored tables in
    (the replaced ones stay in the staging database). ``dry_run`` only reports the plan.
    """

    template_fields: Sequence[str] = (
        "dataset",
        "tables",
        "target_time",
        "target_database",
        "confirm_overwrite",
        "preview",
    )

    def __init__(
        self,
        *,
        dataset: str,
        tables: Any = None,
        target_time: Any = None,
        target_database: Any = None,
        confirm_overwrite: Any = False,
        preview: Any = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.tables = tables
        self.target_time = target_time
        self.target_database = target_database
        self.confirm_overwrite = confirm_overwrite
        self.preview = preview  # the form's dry_run (BaseOperator.dry_run is a method)

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core import catalog as catalog_module

        cfg = load_config()
        dataset = _dataset(cfg, str(self.dataset).strip())
        hook = _hook(cfg)
        catalog = hook.catalog(cfg)
        at = _time(self.target_time, "target_time")
        point = catalog.latest_verified(KIND, dataset.name, at_or_before=at)
        if point is None:
            raise RecoveryPointNotFoundError(
                f"no verified recovery point of {dataset.name!r}"
                + (f" captured at or before {at.isoformat()}" if at else "")
            )
        chain = catalog.chain(point)
        tables = _tables(self.tables)
        stamp = catalog_module.utcnow().strftime("%Y%m%dT%H%M%S")
        target = _optional(self.target_database) or f"restore_{stamp}"
        overwrite = target == dataset.database
        if overwrite and not _flag(self.confirm_overwrite):
            raise UnsafeOperationError(
                f"target_database {target!r} is the live database of {dataset.name!r}; "
                "set confirm_overwrite to restore over it (the replaced tables are kept aside)"
            )
        plan = {
            "dataset": dataset.name,
            "recovery_point_id": point.recovery_point_id,
            "captured_at": point.captured_at.isoformat(),
            "chain": [m.recovery_point_id for m in chain],
            "tables": tables or list(point.details.get("tables") or point.row_counts),
            "target_database": target,
            "overwrite": overwrite,
            "expected_rows": point.row_counts,
        }
        self.log.info("Restore plan: %s", plan)
        if _flag(self.preview):
            self.log.info("Dry run: nothing restored")
            return {**plan, "dry_run": True}
        staging = f"restore_{stamp}" if overwrite else target
        result = hook.restore_chain(chain, target_database=staging, tables=tables or None)
        if not result.ok:
            raise VerificationError(
                f"restore of {point.recovery_point_id} into {staging} does not match its manifest: "
                f"row count mismatches {result.mismatches}, CHECK TABLE {result.check_table}"
            )
        if overwrite:
            hook.swap_tables(staging=staging, live=target, tables=list(result.rows))
            self.log.info("Live tables replaced; the previous ones are in %s", staging)
        rto = dataset.objectives.rto.total_seconds()
        self.log.info(
            "RTO: restored %s in %.1fs (objective %.0fs)%s",
            point.recovery_point_id,
            result.duration_s,
            rto,
            "" if result.duration_s <= rto else " - OVER THE OBJECTIVE",
        )
        return {**plan, **result.summary(), "target_database": target, "staging_database": staging}
