"""The daily EMR output archive of one job and one day: verified server-side copies, then the manifest.

Every object under the job's source prefix for the day is copied server-side (CopyObject,
UploadPartCopy above the multipart threshold) to ``<archive_bucket>/<prefix><job>/dt=<day>/``,
``emr_archive.concurrency`` copies at a time, each one verified (``BackupS3Hook.copy_verified``).
The manifest is written last; with ``delete_source_after_archive`` the sources go only after it,
and only those still as they were copied.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backup_pipelines import __version__
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, EmrJob
from backup_pipelines.core.errors import ConfigError, VerificationError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.core.s3 import BackupS3Hook, S3Object, split_s3_url
from backup_pipelines.core.s3_copy import CopyResult

log = logging.getLogger(__name__)

KIND = DatasetKind.EMR_OUTPUT


def find_job(cfg: BackupConfig, job_name: str) -> EmrJob:
    for job in cfg.emr_archive.jobs:
        if job.name == job_name:
            return job
    known = ", ".join(j.name for j in cfg.emr_archive.jobs) or "none"
    raise ConfigError(f"emr_archive.jobs has no job named {job_name!r} (configured: {known})")


def archive_prefix(cfg: BackupConfig, job: EmrJob, day: str) -> str:
    return f"{cfg.emr_archive.prefix}{job.name}/dt={day}/"


class ArchiveSummary(BaseModel):
    """What the archive task returns (XCom)."""

    job: str
    date: str
    objects: int
    copied: int
    skipped: int
    bytes: int
    bytes_through_worker: int
    location: str


class EmrArchiveService:
    """Archive a day of a job's outputs; apply the archive bucket's lifecycle rule."""

    def __init__(self, cfg: BackupConfig, s3: BackupS3Hook, catalog: Catalog) -> None:
        self.cfg = cfg
        self.settings = cfg.emr_archive
        self.s3 = s3
        self.catalog = catalog

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> EmrArchiveService:
        s3 = BackupS3Hook(
            aws_conn_id=cfg.connections.aws, max_pool_connections=cfg.emr_archive.concurrency + 4
        )
        return cls(cfg, s3, Catalog.from_config(cfg, s3=s3))

    def archive(
        self,
        job_name: str,
        *,
        day: str,
        source_url: str,
        interval: tuple[datetime | None, datetime | None],
        run_id: str,
    ) -> ArchiveSummary:
        job = find_job(self.cfg, job_name)
        src_bucket, src_prefix = split_s3_url(source_url)
        dest_bucket = self.cfg.storage.archive_bucket
        dest_prefix = archive_prefix(self.cfg, job, day)
        sources = self.s3.list_objects(src_bucket, src_prefix)
        if not sources:
            raise VerificationError(f"EMR job {job.name!r} for {day}: {source_url} holds no objects")
        log.info(
            "archiving %d objects (%d bytes) of %s to s3://%s/%s with %d-way concurrency",
            len(sources),
            sum(s.size for s in sources),
            source_url,
            dest_bucket,
            dest_prefix,
            self.settings.concurrency,
        )
        now = clock.utcnow()
        results = self.copy_all(
            sources, src_prefix=src_prefix, dest_bucket=dest_bucket, dest_prefix=dest_prefix, now=now
        )
        manifest = self.build_manifest(
            job=job,
            day=day,
            source_url=source_url,
            results=results,
            interval=interval,
            run_id=run_id,
            now=now,
        )
        self.catalog.write(manifest)  # last: the recovery point exists only once every copy is verified
        if self.settings.delete_source_after_archive:
            self.delete_archived_sources(src_bucket, sources, source_url)
        copied = sum(r.copied for r in results)
        summary = ArchiveSummary(
            job=job.name,
            date=day,
            objects=len(results),
            copied=copied,
            skipped=len(results) - copied,
            bytes=sum(r.size for r in results),
            bytes_through_worker=self.s3.bytes_read,
            location=manifest.location,
        )
        log.info("archive of %s for %s done: %s", job.name, day, summary.model_dump())
        return summary

    def copy_all(
        self,
        sources: list[S3Object],
        *,
        src_prefix: str,
        dest_bucket: str,
        dest_prefix: str,
        now: datetime,
    ) -> list[CopyResult]:
        """Copy and verify every source with ``cfg.emr_archive.concurrency`` threads; fail on any error."""
        settings = self.settings
        cfg = self.cfg
        results: list[CopyResult] = []
        with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="emr-archive") as pool:
            futures = {
                pool.submit(
                    self.s3.copy_verified,
                    src,
                    dest_bucket,
                    dest_prefix + src.key[len(src_prefix) :],
                    encryption=cfg.storage.encryption,
                    storage_class=settings.storage_class,
                    object_lock=cfg.storage.object_lock,
                    multipart_threshold=settings.multipart_threshold_mb * 1024 * 1024,
                    part_size=settings.part_size_mb * 1024 * 1024,
                    now=now,
                ): src
                for src in sources
            }
            try:
                for n, future in enumerate(as_completed(futures), start=1):
                    results.append(future.result())
                    if n % 100 == 0 or n == len(futures):
                        log.info("verified %d of %d objects", n, len(futures))
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
        return sorted(results, key=lambda r: r.key)

    def build_manifest(
        self,
        *,
        job: EmrJob,
        day: str,
        source_url: str,
        results: list[CopyResult],
        interval: tuple[datetime | None, datetime | None],
        run_id: str,
        now: datetime,
    ) -> Manifest:
        """The manifest of a day's archive; a re-run with the same objects keeps the first capture time."""
        import airflow

        cfg = self.cfg
        objects = [
            ObjectEntry(
                key=r.key,
                size=r.size,
                sha256=r.sha256_hex,
                checksum=r.sha256 if r.sha256 and "-" in r.sha256 else None,
                etag=r.etag.strip('"'),
                storage_class=r.storage_class,
            )
            for r in results
        ]
        rp_id = f"dt={day}"
        previous = self.catalog.get(DatasetKind.EMR_OUTPUT, job.name, rp_id)
        captured_at = previous.captured_at if previous is not None and previous.objects == objects else now
        checks = sorted({f"copy-{r.verified_by}" for r in results})
        return Manifest(
            kind=DatasetKind.EMR_OUTPUT,
            dataset=job.name,
            recovery_point_id=rp_id,
            interval_start=interval[0],
            interval_end=interval[1],
            captured_at=captured_at,
            location=f"s3://{cfg.storage.archive_bucket}/{archive_prefix(cfg, job, day)}",
            storage_class=cfg.emr_archive.storage_class,
            objects=objects,
            software={"backup_pipelines": __version__, "airflow": airflow.__version__},
            producer={"dag_id": "emr_daily_output_archive", "run_id": run_id},
            verification=Verification(state="verified", verified_at=now, checks=checks),
            details={
                "job": job.name,
                "date": day,
                "source": source_url,
                "encryption": cfg.storage.encryption.mode,
                "object_lock": cfg.storage.object_lock.model_dump() if cfg.storage.object_lock else None,
            },
        )

    def delete_archived_sources(self, bucket: str, sources: list[S3Object], source_url: str) -> None:
        """Delete the sources the archive now holds; one changed since it was copied is kept."""
        unchanged: list[str] = []
        changed: list[str] = []
        for src in sources:
            head = self.s3.head(bucket, src.key)
            same = head is not None and head["ETag"] == src.etag and int(head["ContentLength"]) == src.size
            (unchanged if same else changed).append(src.key)
        if changed:
            log.warning(
                "kept %d source object(s) that changed or vanished since they were archived: %s",
                len(changed),
                changed[:20],
            )
        self.s3.delete_keys(bucket, unchanged)
        log.info("deleted %d source objects under %s after the verified archive", len(unchanged), source_url)

    def apply_lifecycle(self) -> dict[str, Any]:
        """Merge the configured lifecycle rule into the archive bucket's rules (by rule ID, idempotent)."""
        from backup_pipelines.core.lifecycle import TransitionSpec, build_rule, merge_rules

        lc = self.settings.lifecycle
        rule = build_rule(  # validates before any call
            rule_id=lc.rule_id,
            prefix=self.settings.prefix,
            transitions=[TransitionSpec(t.days, t.storage_class) for t in lc.transitions],
            expiration_days=lc.expiration_days,
            abort_incomplete_multipart_days=lc.abort_incomplete_multipart_days,
        )
        bucket = self.cfg.storage.archive_bucket
        merged = merge_rules(self.s3.lifecycle_rules(bucket), [rule])
        if merged.changed:
            self.s3.put_lifecycle_rules(bucket, merged.rules)
        log.info(
            "lifecycle of s3://%s: %s (added %s, replaced %s, kept %d foreign rule(s) %s)",
            bucket,
            "updated" if merged.changed else "unchanged",
            merged.added,
            merged.replaced,
            len(merged.kept),
            merged.kept,
        )
        return {"changed": merged.changed, "rules": [r.get("ID") for r in merged.rules]}
