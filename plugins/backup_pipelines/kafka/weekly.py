"""The weekly archive of the configured topics, one Airflow task per step.

1. ``plan`` (the retention guard, ``kafka.plan``): one ``PartitionSpec`` per topic-partition, from
   where the previous archive of the topic ended to the cut (the end offset observed when the
   window closed); the guard finds offsets Kafka deleted before they were archived, topics whose
   ``retention.ms`` is shorter than the window plus grace, and records not yet archived that are
   older than retention minus grace.
2. ``archive`` (mapped): one partition of the window into files (``kafka.archive``).
3. ``check``: gap-free, overlap-free coverage against the previous archive (``kafka.coverage``).
4. ``write_manifests``: one manifest per topic, written last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, OffsetRange, Verification
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.kafka.archive import (
    KEY_RANGE,
    archive_partition,
    to_ms,
    upload_archive_file,
)
from backup_pipelines.kafka.client import KafkaClient
from backup_pipelines.kafka.coverage import check_contiguity
from backup_pipelines.kafka.parquet import ArchiveFile
from backup_pipelines.kafka.plan import ArchivePlanner, previous_archive
from backup_pipelines.kafka.specs import GuardFinding, PartitionResult, PartitionSpec

log = logging.getLogger(__name__)

KIND = DatasetKind.KAFKA_ARCHIVE


class WeeklyArchive:
    """The weekly archive of the configured topics: plan, archive a partition, check, catalog."""

    def __init__(self, kafka: KafkaClient, s3: BackupS3Hook, catalog: Catalog, cfg: BackupConfig) -> None:
        self.kafka = kafka
        self.s3 = s3
        self.catalog = catalog
        self.cfg = cfg
        self.section = cfg.kafka_archive

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> WeeklyArchive:
        s3 = BackupS3Hook(aws_conn_id=cfg.connections.aws)
        return cls(KafkaClient.from_config(cfg), s3, Catalog.from_config(cfg, s3=s3), cfg)

    def previous(self, topic: str, interval_start: datetime, interval_end: datetime) -> Manifest | None:
        """The archive this window continues (``kafka.plan.previous_archive``)."""
        return previous_archive(self.catalog, topic, interval_start, interval_end)

    def plan(
        self, interval_start: datetime, interval_end: datetime
    ) -> tuple[list[PartitionSpec], list[GuardFinding]]:
        """One spec per topic-partition, and the guard's findings (``kafka.plan``)."""
        return ArchivePlanner(self.kafka, self.catalog, self.section).plan(interval_start, interval_end)

    def archive(self, spec: PartitionSpec, *, spool_dir: Path | str | None = None) -> PartitionResult:
        """Archive one topic-partition of the window; returns its range and files (for XCom)."""
        if spec.existing:
            return self._already_archived(spec)
        topic, partition = spec.topic, spec.partition
        skip_before = None
        if spec.start_mode == "continue":
            assert spec.start_offset is not None
            start = spec.start_offset
        elif spec.start_mode == "earliest":
            start = self.kafka.watermarks(topic, partition)[0]
        else:
            start = self.kafka.offset_for_time(topic, partition, to_ms(spec.interval_start))
            if spec.end_offset is not None:
                start = min(start, spec.end_offset)
            skip_before = to_ms(spec.interval_start)
        now = clock.utcnow()

        def _upload(archive_file: ArchiveFile) -> dict[str, Any]:
            return upload_archive_file(
                self.s3,
                archive_file,
                topic=topic,
                bucket=self.cfg.storage.archive_bucket,
                prefix=self.section.prefix,
                encryption=self.cfg.storage.encryption,
                storage_class=self.section.storage_class,
                object_lock=self.cfg.storage.object_lock,
                now=now,
            )

        result, entries = archive_partition(
            self.kafka,
            topic=topic,
            partition=partition,
            start_offset=start,
            end_offset=spec.end_offset,
            skip_before_ms=skip_before,
            window_ms=(to_ms(spec.interval_start), to_ms(spec.interval_end)),
            upload=_upload,
            file_max_bytes=self.section.file_max_bytes,
            row_group_rows=self.section.row_group_rows,
            spool_dir=spool_dir,
        )
        self.remove_stale_attempts(topic, partition, result.start_offset, {e["key"] for e in entries})
        return PartitionResult.of(
            spec,
            start_offset=result.start_offset,
            end_offset=result.end_offset,
            records=result.records,
            files=entries,
            stopped_by=result.stopped_by,
            no_record=result.no_record(),
            skipped_before_window=result.skipped_before_window,
            outside_window=result.outside_window,
        )

    def _already_archived(self, spec: PartitionSpec) -> PartitionResult:
        manifest = self.catalog.read(KIND, spec.topic, spec.recovery_point_id)
        rng = next((o for o in manifest.offsets if o.partition == spec.partition), None)
        if rng is None:
            # A partition added since this window was archived: the next window's run starts it
            # at its low watermark (there is no previous end to continue from).
            log.info(
                "%s[%d]: not in this window's archive; the next window covers it", spec.topic, spec.partition
            )
            return PartitionResult.of(
                spec,
                start_offset=None,
                end_offset=None,
                records=0,
                files=[],
                stopped_by="not_in_archived_window",
            )
        files = [o.model_dump(mode="json") for o in manifest.objects if o.partition == spec.partition]
        log.info(
            "%s[%d]: window already archived in %s; nothing to do",
            spec.topic,
            spec.partition,
            manifest.location,
        )
        return PartitionResult.of(
            spec,
            start_offset=rng.start_offset,
            end_offset=rng.end_offset,
            records=sum(f["records"] or 0 for f in files),
            files=files,
            stopped_by="already_archived",
            no_record=manifest.details.get("offsets_without_record", {}).get(str(spec.partition), {}),
        )

    def remove_stale_attempts(self, topic: str, partition: int, start: int, keep: set[str]) -> list[str]:
        """Delete files an earlier, killed attempt of this window left at or after ``start``.

        No manifest references them: the previous archive ends at ``start`` and archives of later
        windows are refused (``previous``), so they are garbage that would confuse a listing.
        """
        listing = self.catalog.list_points(KIND, topic)
        if listing.invalid:
            # An unreadable manifest may list these files: keep everything until someone looks.
            log.warning(
                "%s[%d]: not removing leftovers of earlier attempts: %d manifest(s) cannot be read (%s)",
                topic,
                partition,
                len(listing.invalid),
                ", ".join(i.key for i in listing.invalid),
            )
            return []
        listed = {obj.key for point in listing.points for obj in point.objects}
        bucket = self.cfg.storage.archive_bucket
        stale = []
        for obj in self.s3.iter_objects(bucket, f"{self.section.prefix}{topic}/partition={partition}/"):
            match = KEY_RANGE.search(obj.key)
            if match and int(match.group(2)) >= start and obj.key not in keep and obj.key not in listed:
                stale.append(obj.key)
        if stale:
            log.warning(
                "%s[%d]: removing %d file(s) left by an earlier attempt: %s",
                topic,
                partition,
                len(stale),
                stale,
            )
            self.s3.delete_keys(bucket, stale)
        return stale

    def check(self, results: Sequence[PartitionResult]) -> list[str]:
        """Gap-free, overlap-free coverage against the previous archive of each topic."""
        problems: list[str] = []
        for topic in sorted({r.topic for r in results}):
            rows = [r for r in results if r.topic == topic]
            first = rows[0]
            if self.catalog.exists(KIND, topic, first.recovery_point_id):
                continue
            previous = self.previous(topic, first.interval_start, first.interval_end)
            prev_end = {(o.topic, o.partition): o.end_offset for o in (previous.offsets if previous else [])}
            entries = [f for r in rows for f in r.files]
            problems += check_contiguity([r.model_dump() for r in rows], entries, prev_end)
        return problems

    def write_manifests(
        self, results: Sequence[PartitionResult], *, producer: dict[str, str]
    ) -> list[Manifest]:
        """One manifest per topic, written last, verified by the offset and upload checks."""
        written = []
        for topic in sorted({r.topic for r in results}):
            rows = sorted((r for r in results if r.topic == topic), key=lambda r: r.partition)
            existing = self.catalog.get(KIND, topic, rows[0].recovery_point_id)
            if existing is None:
                existing = self._manifest(topic, rows, producer)
                self.catalog.write(existing)
            written.append(existing)
        return written

    def _manifest(self, topic: str, rows: list[PartitionResult], producer: dict[str, str]) -> Manifest:
        now = clock.utcnow()
        return Manifest(
            kind=KIND,
            dataset=topic,
            recovery_point_id=rows[0].recovery_point_id,
            interval_start=rows[0].interval_start,
            interval_end=rows[0].interval_end,
            captured_at=now,
            location=f"s3://{self.cfg.storage.archive_bucket}/{self.section.prefix}{topic}/",
            storage_class=self.section.storage_class,
            objects=[
                ObjectEntry(**{k: v for k, v in f.items() if k in ObjectEntry.model_fields})
                for r in rows
                for f in r.files
            ],
            message_count=sum(r.records for r in rows),
            offsets=[
                OffsetRange(
                    topic=r.topic, partition=r.partition, start_offset=r.start_offset, end_offset=r.end_offset
                )
                for r in rows
                if r.start_offset is not None and r.end_offset is not None
            ],
            software=_software(),
            producer=producer,
            verification=Verification(
                state="verified",
                verified_at=now,
                checks=["offsets_contiguous_with_previous", "files_cover_ranges", "upload_size_and_sha256"],
            ),
            details={
                "previous": rows[0].previous,
                "format": "parquet-zstd",
                "raw_bytes": sum(f.get("raw_bytes") or 0 for r in rows for f in r.files),
                "stopped_by": {str(r.partition): r.stopped_by for r in rows},
                "skipped_before_window": sum(r.skipped_before_window for r in rows),
                "offsets_without_record": {str(r.partition): r.no_record for r in rows if r.no_record},
                "stamped_outside_window": _outside_window(rows),
                "cut_observed_at": _iso(rows[0].cut_observed_at),
                "retention_warning": rows[0].retention_warning,
            },
        )


def _outside_window(rows: Sequence[PartitionResult]) -> dict[str, Any]:
    """How many archived records are stamped before the window, at or after its end, or not at
    all: in total and per partition (partitions with none left out)."""
    kinds = ("before", "after", "none")
    total = {kind: sum(r.outside_window.get(kind, 0) for r in rows) for kind in kinds}
    by_partition = {
        str(r.partition): {kind: r.outside_window.get(kind, 0) for kind in kinds}
        for r in rows
        if any(r.outside_window.get(kind) for kind in kinds)
    }
    return {**total, "by_partition": by_partition}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _software() -> dict[str, str]:
    import confluent_kafka
    import pyarrow

    return {
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "pyarrow": pyarrow.__version__,
    }
