"""Real ClickHouse backups for tests: a point or a whole chain, described as the hourly DAG does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from backup_pipelines.clickhouse.backup_files import backup_location
from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.snapshot import SnapshotPlan, SnapshotService
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, load_config
from backup_pipelines.core.manifest import Manifest


def service(cfg: BackupConfig | None = None) -> SnapshotService:
    """The snapshot service of the config, with the AWS connection's keys handed to ClickHouse."""
    cfg = cfg or load_config()
    engine = ClickHouseEngine(
        clickhouse_conn_id=cfg.connections.clickhouse,
        aws_conn_id=cfg.connections.aws,
        credentials="connection",
    )
    return SnapshotService(cfg, engine, Catalog.from_config(cfg, s3=engine.s3))


def backup_point(
    snapshots: SnapshotService,
    *,
    dataset: str,
    database: str,
    tables: Sequence[str],
    rp_id: str,
    base: Manifest | None = None,
    chain: Sequence[Manifest] = (),
    captured_at: datetime | None = None,
    prefix: str | None = None,
    write: bool = True,
) -> Manifest:
    """Back up ``tables`` now (incremental on ``base``), describe it, and write its manifest."""
    bucket = snapshots.cfg.storage.backup_bucket
    location = backup_location(bucket, prefix or snapshots.section.prefix, dataset, rp_id)
    when = captured_at or datetime.now(UTC)
    plan = SnapshotPlan(
        dataset=dataset,
        database=database,
        tables=list(tables),
        rp_id=rp_id,
        location=location,
        base_id=base.recovery_point_id if base else None,
        chain_locations=[m.location for m in chain],
        captured_at=when,
        interval_start=None,
        interval_end=when,
    )
    engine = snapshots.engine
    plan.backup_id = engine.start_backup(
        dataset=dataset,
        rp_id=rp_id,
        database=database,
        tables=list(tables),
        location=location,
        base_location=base.location if base else None,
    )
    manifest = snapshots.describe(plan, engine.wait(plan.backup_id, poll_interval=0.05), base)
    if write:
        snapshots.catalog.write(manifest)
    return manifest


def backup_chain(
    snapshots: SnapshotService,
    *,
    dataset: str,
    database: str,
    tables: Sequence[str],
    rp_ids: Sequence[str],
    before_each: Callable[[int], None] | None = None,
    minutes_apart: int = 10,
    newest_minutes_ago: int = 0,
    write: bool = True,
) -> list[Manifest]:
    """A full backup and increments on it, ``before_each(n)`` run before the n-th backup; the
    newest is captured ``newest_minutes_ago``, the others ``minutes_apart`` before each other."""
    chain: list[Manifest] = []
    now = datetime.now(UTC)
    for n, rp_id in enumerate(rp_ids):
        if before_each is not None:
            before_each(n)
        chain.append(
            backup_point(
                snapshots,
                dataset=dataset,
                database=database,
                tables=tables,
                rp_id=rp_id,
                base=chain[-1] if chain else None,
                chain=list(chain),
                captured_at=now - timedelta(minutes=minutes_apart * (len(rp_ids) - n) + newest_minutes_ago),
                write=write,
            )
        )
    return chain
