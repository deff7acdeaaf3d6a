"""The whole config file: every section, and the rules that span sections."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import model_validator

from backup_pipelines.core.config.common import (
    Alerts,
    Connections,
    Deadline,
    Defaults,
    Objectives,
    Storage,
)
from backup_pipelines.core.config.operations import Costs, DrDrill, RpoMonitor
from backup_pipelines.core.config.pipelines import (
    ClickHouseSnapshots,
    DeepArchiveExports,
    EmrArchive,
    KafkaArchive,
)
from backup_pipelines.core.config.types import Strict, check_cron, human_duration, longest_gap
from backup_pipelines.core.kinds import DatasetKind


class BackupConfig(Strict):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    connections: Connections = Connections()
    storage: Storage
    alerts: Alerts
    deadlines: dict[str, Deadline] = {}
    clickhouse_snapshots: ClickHouseSnapshots = ClickHouseSnapshots()
    emr_archive: EmrArchive = EmrArchive()
    kafka_archive: KafkaArchive = KafkaArchive()
    deep_archive_exports: DeepArchiveExports = DeepArchiveExports()
    rpo_monitor: RpoMonitor = RpoMonitor()
    dr_drill: DrDrill = DrDrill()
    costs: Costs = Costs()

    @model_validator(mode="after")
    def _unique_dataset_names(self) -> BackupConfig:
        for section, items in (
            ("clickhouse_snapshots.datasets", self.clickhouse_snapshots.datasets),
            ("emr_archive.jobs", self.emr_archive.jobs),
            ("kafka_archive.topics", self.kafka_archive.topics),
            ("deep_archive_exports.exports", self.deep_archive_exports.exports),
        ):
            names = [item.name for item in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{section}: duplicate name(s) {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _prefixes_do_not_overlap(self) -> BackupConfig:
        """Areas sharing a bucket must not nest: a sweep of one (retention's orphan sweep, an
        export's old-generation clean-up) would otherwise reach into another, e.g. the catalog."""
        buckets = {
            "storage.backup_bucket": {
                "storage.catalog_prefix": self.storage.catalog_prefix,
                "clickhouse_snapshots.prefix": self.clickhouse_snapshots.prefix,
                "dr_drill.report_prefix": self.dr_drill.report_prefix,
                "rpo_monitor.status_key": self.rpo_monitor.status_key,
            },
            "storage.archive_bucket": {
                "emr_archive.prefix": self.emr_archive.prefix,
                "kafka_archive.prefix": self.kafka_archive.prefix,
                "deep_archive_exports.prefix": self.deep_archive_exports.prefix,
            },
        }
        if self.storage.backup_bucket == self.storage.archive_bucket:
            buckets = {
                "storage.backup_bucket": {
                    **buckets["storage.backup_bucket"],
                    **buckets["storage.archive_bucket"],
                }
            }
        for bucket, areas in buckets.items():
            items = sorted(areas.items())
            for i, (name_a, prefix_a) in enumerate(items):
                for name_b, prefix_b in items[i + 1 :]:
                    if prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a):
                        raise ValueError(
                            f"{name_a} ({prefix_a!r}) and {name_b} ({prefix_b!r}) overlap in {bucket}; "
                            "give each area its own prefix"
                        )
        return self

    @model_validator(mode="after")
    def _schedules_are_cron(self) -> BackupConfig:
        """The operations' schedules (the pipelines' are typed ``Cron``); an empty drill schedule
        means the drill runs only when triggered."""
        for key, value in (
            ("rpo_monitor.schedule", self.rpo_monitor.schedule),
            ("dr_drill.schedule", self.dr_drill.schedule),
        ):
            if value:
                try:
                    check_cron(value)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _rpo_within_reach(self) -> BackupConfig:
        """An objective its schedule can meet: a point is at least as old as the longest gap
        between two runs of the schedule that produces it, so ``rpo`` must be at least that gap."""
        sections: tuple[tuple[str, str, str, Sequence[Any]], ...] = (
            (
                "clickhouse_snapshots",
                self.clickhouse_snapshots.schedule,
                "datasets",
                self.clickhouse_snapshots.datasets,
            ),
            ("emr_archive", self.emr_archive.schedule, "jobs", self.emr_archive.jobs),
            ("kafka_archive", self.kafka_archive.schedule, "topics", self.kafka_archive.topics),
            (
                "deep_archive_exports",
                self.deep_archive_exports.schedule,
                "exports",
                self.deep_archive_exports.exports,
            ),
        )
        for section, schedule, list_key, items in sections:
            if not items:
                continue
            gap = longest_gap(schedule)
            for i, item in enumerate(items):
                rpo = item.objectives.rpo
                if rpo < gap:
                    raise ValueError(
                        f"{section}.{list_key}[{i}].objectives.rpo: {human_duration(rpo.total_seconds())} "
                        f"({item.name}) cannot be met: {section}.schedule {schedule!r} runs up to "
                        f"{human_duration(gap.total_seconds())} apart, so the newest point gets that old; "
                        f"use an rpo of at least {human_duration(gap.total_seconds())} "
                        "or a more frequent schedule"
                    )
        return self

    def datasets(self) -> Iterator[tuple[DatasetKind, str, Objectives]]:
        """Every protected dataset with its catalog kind and objectives (for RPO monitoring)."""
        for ch in self.clickhouse_snapshots.datasets:
            yield DatasetKind.CLICKHOUSE_SNAPSHOT, ch.name, ch.objectives
        for job in self.emr_archive.jobs:
            yield DatasetKind.EMR_OUTPUT, job.name, job.objectives
        for topic in self.kafka_archive.topics:
            yield DatasetKind.KAFKA_ARCHIVE, topic.name, topic.objectives
        for export in self.deep_archive_exports.exports:
            yield DatasetKind.DEEP_ARCHIVE_EXPORT, export.name, export.objectives
