"""The DR replication pass: every verified point of every dataset, and the drill reports, into the
DR region; replica points the primary's retention removed, dropped in step.

``ReplicaService.replicate`` reads both catalogs per dataset, copies what the replica lacks
(``replica.plan``), one point at a time, oldest first (``replica.points``), mirrors the drill
reports, and drops what retention removed. A dataset whose primary cannot be read (a regional
outage) is reported and skipped; the pass goes on with the others and fails at the end naming
every dataset it could not bring up to date, so Airflow retries and the run shows red. Each run
starts from the catalogs, so a run after an outage catches up: nothing copied twice (an object
already in the replica with the same checksum is not copied again) and nothing skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import BackupPipelinesError, ReplicaError
from backup_pipelines.core.index import IndexEntry
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Listing
from backup_pipelines.core.regions import region_catalog, region_hook
from backup_pipelines.core.replica import replica_location, replica_section
from backup_pipelines.core.s3 import BackupS3Hook, split_s3_url
from backup_pipelines.replica.plan import plan_dataset
from backup_pipelines.replica.points import PointReplicator, UrlOf
from backup_pipelines.replica.transfer import RegionTransfer

log = logging.getLogger(__name__)


class DatasetReplication(BaseModel):
    kind: str
    dataset: str
    replicated: list[str] = []
    thawing: list[str] = []
    waiting: dict[str, str] = {}
    dropped: list[str] = []
    error: str | None = None


class ReplicationSummary(BaseModel):
    """The task's summary (XCom): per dataset what was copied, waits, was dropped or failed."""

    region: str
    mode: str
    datasets: list[DatasetReplication]
    reports_copied: int = 0
    objects_copied: int = 0
    bytes_copied: int = 0

    @property
    def errors(self) -> list[str]:
        return [f"{d.kind}/{d.dataset}: {d.error}" for d in self.datasets if d.error]


def clickhouse_url(hook: BackupS3Hook) -> UrlOf:
    """``s3://bucket/key`` -> the URL ClickHouse's ``S3()`` is given for it through ``hook``'s
    connection (the same rule as ``ClickHouseEngine.http_url``, without a ClickHouse connection)."""
    from backup_pipelines.clickhouse.engine import ClickHouseEngine

    return ClickHouseEngine(aws_conn_id=hook.aws_conn_id or "aws_default").http_url


class ReplicaService:
    def __init__(
        self,
        cfg: BackupConfig,
        primary: Catalog,
        dr: Catalog,
        transfer: RegionTransfer,
        points: PointReplicator,
    ) -> None:
        self.cfg = cfg
        self.replica = replica_section(cfg)
        self.primary = primary
        self.dr = dr
        self.transfer = transfer
        self.points = points

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> ReplicaService:
        replica = replica_section(cfg)
        primary_s3, dr_s3 = region_hook(cfg, "primary"), region_hook(cfg, "dr")
        transfer = RegionTransfer(primary_s3, dr_s3, replica, copy=replica.mode == "copy")
        primary, dr = region_catalog(cfg, "primary", s3=primary_s3), region_catalog(cfg, "dr", s3=dr_s3)
        points = PointReplicator(
            cfg,
            transfer,
            primary,
            dr,
            primary_url=clickhouse_url(primary_s3),
            dr_url=clickhouse_url(dr_s3),
            concurrency=replica.concurrency,
        )
        return cls(cfg, primary, dr, transfer, points)

    def replicate(self) -> ReplicationSummary:
        """Bring the DR region up to date; raise ``ReplicaError`` at the end naming what could not be."""
        summary = ReplicationSummary(region=self.replica.region, mode=self.replica.mode, datasets=[])
        for kind, dataset, _ in self.cfg.datasets():
            summary.datasets.append(self.replicate_dataset(kind, dataset, summary))
        try:
            summary.reports_copied = self.mirror_reports()
        except (BotoCoreError, ClientError, BackupPipelinesError) as exc:
            summary.datasets.append(
                DatasetReplication(kind="reports", dataset="dr_drill", error=one_line(exc))
            )
        if summary.errors:
            raise ReplicaError(
                f"DR replication to {self.replica.region} incomplete for {len(summary.errors)} dataset(s): "
                + "; ".join(summary.errors)
                + " (everything else is replicated; the next run resumes)"
            )
        return summary

    def replicate_dataset(
        self, kind: DatasetKind, dataset: str, summary: ReplicationSummary
    ) -> DatasetReplication:
        result = DatasetReplication(kind=str(kind), dataset=dataset)
        try:
            primary = self.primary.list_points(kind, dataset)
        except (BotoCoreError, ClientError) as exc:
            result.error = f"primary region unreachable: {one_line(exc)}"
            return result
        try:
            replica = self.dr.list_points(kind, dataset)
            plan = plan_dataset(primary, replica)
            result.waiting = plan.waiting
            not_ready: set[str] = set()
            for summary_point in plan.copy:
                if summary_point.base in not_ready:  # its base is still thawing or replicating
                    result.waiting[summary_point.recovery_point_id] = (
                        f"its base {summary_point.base} is not ready"
                    )
                    not_ready.add(summary_point.recovery_point_id)
                    continue
                point = self.primary.read(kind, dataset, summary_point.recovery_point_id)  # with objects
                base = self.primary.read(kind, dataset, point.base) if point.base else None
                outcome = self.points.replicate(point, base)
                if outcome.state in ("thawing", "pending"):
                    not_ready.add(point.recovery_point_id)
                    result.thawing.append(f"{point.recovery_point_id} ({outcome.detail})")
                else:
                    result.replicated.append(point.recovery_point_id)
                    summary.objects_copied += outcome.objects_copied
                    summary.bytes_copied += outcome.bytes_copied
            if plan.drop:
                result.dropped = self.drop(plan.drop, self.dr.list_points(kind, dataset))
        except (BotoCoreError, ClientError, BackupPipelinesError) as exc:
            result.error = one_line(exc)
        return result

    def drop(self, doomed: list[IndexEntry], replica: Listing) -> list[str]:
        """Delete replica points the primary's retention removed: data first, manifest last; an
        object another kept replica point lists stays."""
        gone = {p.recovery_point_id for p in doomed}
        kept_keys = {o.key for p in replica.points if p.recovery_point_id not in gone for o in p.objects}
        for entry in doomed:
            point = replica.manifest(entry.recovery_point_id)
            bucket, prefix = split_s3_url(point.location)
            keys = {o.key for o in point.objects}
            if point.kind == DatasetKind.CLICKHOUSE_SNAPSHOT and prefix:
                keys.update(o.key for o in self.dr.s3.iter_objects(bucket, prefix))
            self.dr.s3.delete_keys(bucket, sorted(keys - kept_keys))
            self.dr.delete(point)
            log.info("Replica: dropped %s (no longer in the primary catalog)", point.label)
        return sorted(gone)

    def mirror_reports(self) -> int:
        """Copy drill reports the replica lacks (or holds different bytes of); returns how many."""
        prefix = self.cfg.dr_drill.report_prefix
        source_bucket = self.cfg.storage.backup_bucket
        dest_bucket, _ = split_s3_url(replica_location(self.cfg, f"s3://{source_bucket}/"))
        copied = 0
        for obj in self.transfer.primary.iter_objects(source_bucket, prefix):
            done = self.transfer.transfer(obj, dest_bucket, expected_sha256=None)
            copied += done.outcome == "copied"
        return copied


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, BackupPipelinesError) else text


def summary_json(summary: ReplicationSummary) -> dict[str, Any]:
    return summary.model_dump(mode="json")
