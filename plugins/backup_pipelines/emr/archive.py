"""The daily EMR output archive of one job and one day: verified server-side copies, then the manifest.

One run, for ``s3://<source>`` -> ``s3://<archive_bucket>/<prefix><job>/dt=<day>/``:

1. the previous manifest of the day (one GET) and the two listings (the archive's only when there
   is a previous manifest), walked together (``emr.listing``): an object the previous verified
   manifest already holds from the same source version, intact in the archive, costs no request;
2. every other object is one verified ``CopyObject`` (``VerifiedCopy.copy_listed``; conditional on
   the listed ETag, SHA-256 from S3's answer), ``emr_archive.concurrency`` at a time, the listing
   streaming through the pool;
3. one listing of the archive prefix checks that every copy is still what S3 answered;
4. the manifest, last, only when every object is archived; an unchanged day keeps its manifest
   byte for byte. An object that cannot be archived does not stop the others: the run archives
   what it can, then fails naming every object it could not archive and why, with no manifest;
5. with ``delete_source_after_archive``, one listing of the sources and ``DeleteObjects`` (1,000
   keys a request) of those still exactly as archived.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from backup_pipelines import __version__
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, EmrJob
from backup_pipelines.core.errors import ConfigError, VerificationError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, Verification
from backup_pipelines.core.s3 import BackupS3Hook, split_s3_url
from backup_pipelines.core.s3_copy import Copied, VerifiedCopy
from backup_pipelines.emr.listing import SOURCE_ETAGS, Pair, PreviousArchive, bare_etag, pair_listings
from backup_pipelines.emr.run import DayRun, bounded_map

log = logging.getLogger(__name__)

KIND = DatasetKind.EMR_OUTPUT
PROGRESS_EVERY = 1000
PROGRESS_SECONDS = 30.0


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
    manifest: Literal["written", "unchanged"] = "written"
    carried: int = 0
    deleted_sources: int = 0


class LifecycleSummary(BaseModel):
    """What the lifecycle task returns (XCom): per bucket, whether it changed and the rule IDs."""

    buckets: dict[str, dict[str, Any]]

    @property
    def changed(self) -> bool:
        return any(b["changed"] for b in self.buckets.values())


class EmrArchiveService:
    """Archive a day of a job's outputs; apply the package's lifecycle rules."""

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
        run = self.start(job, day=day, source_url=source_url)
        now = clock.utcnow()
        log.info(
            "archiving %s to s3://%s/%s with %d-way concurrency (previous manifest: %s)",
            source_url,
            run.dest_bucket,
            run.dest_prefix,
            self.settings.concurrency,
            run.previous.manifest.verification.state if run.previous.manifest else "none",
        )
        self.copy_day(run, now=now)
        if not run.failures and run.copied:
            self.verify_listing(run)
        if run.failures:
            self.fail(run)
        if not run.entries:
            raise VerificationError(f"{run.label}: {source_url} holds no objects")
        if run.unchanged:
            manifest = run.previous.manifest
            assert manifest is not None
            log.info("%s: every object already archived and unchanged; manifest kept as it is", run.label)
        else:
            manifest = self.build_manifest(run, job=job, interval=interval, run_id=run_id, now=now)
            self.catalog.write(manifest)  # last: the point exists only once every copy is verified
        deleted = (
            self.delete_archived_sources(run, manifest) if self.settings.delete_source_after_archive else 0
        )
        summary = ArchiveSummary(
            job=job.name,
            date=day,
            objects=len(manifest.objects),
            copied=run.copied,
            skipped=run.kept + run.carried,
            bytes=manifest.size_bytes,
            bytes_through_worker=self.s3.bytes_read,
            location=manifest.location,
            manifest="unchanged" if run.unchanged else "written",
            carried=run.carried,
            deleted_sources=deleted,
        )
        log.info("archive of %s for %s done: %s", job.name, day, summary.model_dump())
        return summary

    def start(self, job: EmrJob, *, day: str, source_url: str) -> DayRun:
        src_bucket, src_prefix = split_s3_url(source_url)
        dest_prefix = archive_prefix(self.cfg, job, day)
        previous = self.catalog.get(KIND, job.name, f"dt={day}")
        return DayRun(
            job=job.name,
            day=day,
            source_url=source_url,
            src_bucket=src_bucket,
            src_prefix=src_prefix,
            dest_bucket=self.cfg.storage.archive_bucket,
            dest_prefix=dest_prefix,
            storage_class=self.settings.storage_class,
            previous=PreviousArchive(previous, dest_prefix),
        )

    def copy_day(self, run: DayRun, *, now: datetime) -> None:
        """Walk the two listings; copy what needs it, ``concurrency`` at a time; record every outcome."""
        settings, storage = self.settings, self.cfg.storage
        copier = VerifiedCopy(self.s3)
        args = self.s3.write_args(
            run.dest_bucket,
            encryption=storage.encryption,
            storage_class=settings.storage_class,
            object_lock=None,
        )

        def copy_one(pair: Pair) -> Copied:
            assert pair.source is not None
            key = run.dest_key(pair.rel)
            copied = copier.copy_listed(
                pair.source,
                run.dest_bucket,
                key,
                args=args,
                multipart_threshold=settings.multipart_threshold_mb * 1024 * 1024,
                part_size=settings.part_size_mb * 1024 * 1024,
            )
            self.s3.retain(run.dest_bucket, key, storage.object_lock, now)
            return copied

        progress = _Progress(run)
        outcomes = bounded_map(
            copy_one, self._to_copy(run), workers=settings.concurrency, window=4 * settings.concurrency
        )
        try:
            for pair, outcome in outcomes:
                if isinstance(outcome, Copied):
                    run.record_copy(pair, outcome)
                elif isinstance(outcome, Exception):
                    assert pair.source is not None
                    log.error("not archived: %s: %s", pair.source.url, outcome)
                    run.record_failure(pair.source.url, outcome)
                else:
                    raise outcome
                if run.stopped:
                    break
                progress.tick()
        finally:
            outcomes.close()
        progress.done()

    def _to_copy(self, run: DayRun) -> Any:
        """The pairs that need a copy; keeps, carries and losses are recorded on the way."""
        # Without a previous manifest every source is copied: the archive listing could not change that.
        archived = (
            self.s3.iter_objects(run.dest_bucket, run.dest_prefix)
            if run.previous.manifest is not None
            else iter(())
        )
        pairs = pair_listings(
            self.s3.iter_objects(run.src_bucket, run.src_prefix), run.src_prefix, archived, run.dest_prefix
        )
        for pair in pairs:
            action = run.previous.decide(pair)
            entry = run.previous.by_rel.get(pair.rel)
            if pair.source is not None:
                run.saw_source(pair)
            if action == "copy":
                yield pair
            elif action in ("keep", "carry"):
                assert entry is not None
                run.keep(pair.rel, entry, carried=action == "carry")
            elif action == "lost":
                assert entry is not None
                run.record_lost(pair, entry)
        for pair in run.previous.missing():
            run.record_lost(pair, run.previous.by_rel[pair.rel])

    def verify_listing(self, run: DayRun) -> None:
        """One listing of the archive prefix: every entry is still the copy S3 answered (ETag, size)."""
        run.entries.sort(key=lambda e: e.key)
        listed = self.s3.iter_objects(run.dest_bucket, run.dest_prefix)
        current = next(listed, None)
        for entry in run.entries:
            while current is not None and current.key < entry.key:
                current = next(listed, None)
            found = current if current is not None and current.key == entry.key else None
            if found is None or bare_etag(found.etag) != entry.etag or found.size != entry.size:
                seen = f"ETag {bare_etag(found.etag)}, size {found.size}" if found else "it is gone"
                run.record_failure(
                    f"s3://{run.dest_bucket}/{entry.key}",
                    VerificationError(
                        f"changed after its verified copy (copied ETag {entry.etag}, size {entry.size}; "
                        f"the archive now lists {seen})"
                    ),
                )
        log.info("%s: %d archived object(s) checked against one listing", run.label, len(run.entries))

    def fail(self, run: DayRun) -> None:
        """No manifest: name every object not archived; a previous point whose copies were replaced
        or lost is marked failed, so the catalog never calls it verified."""
        for failure in run.failures:
            log.error("%s: not archived: %s", run.label, failure.describe())
        previous = run.previous.manifest
        if run.breaks_previous and previous is not None and previous.verification.state != "failed":
            shown = ", ".join(run.breaks_previous[:5])
            self.catalog.mark_verification(
                previous,
                state="failed",
                checks=["archive_rerun"],
                detail=f"a re-archive replaced or found lost {len(run.breaks_previous)} of its object(s) "
                f"({shown}) and did not complete; archive the day again",
            )
        raise run.error()

    def build_manifest(
        self,
        run: DayRun,
        *,
        job: EmrJob,
        interval: tuple[datetime | None, datetime | None],
        run_id: str,
        now: datetime,
    ) -> Manifest:
        """The day's manifest; the capture time stays the previous one while the data is the same."""
        import airflow

        cfg = self.cfg
        previous = run.previous.manifest
        run.entries.sort(key=lambda e: e.key)
        captured_at = previous.captured_at if previous is not None and run.same_data else now
        return Manifest(
            kind=KIND,
            dataset=job.name,
            recovery_point_id=f"dt={run.day}",
            interval_start=interval[0],
            interval_end=interval[1],
            captured_at=captured_at,
            location=f"s3://{run.dest_bucket}/{run.dest_prefix}",
            storage_class=self.settings.storage_class,
            objects=run.entries,
            software={"backup_pipelines": __version__, "airflow": airflow.__version__},
            producer={"dag_id": "emr_daily_output_archive", "run_id": run_id},
            verification=Verification(state="verified", verified_at=now, checks=["copy-sha256", "listing"]),
            details={
                "job": job.name,
                "date": run.day,
                "source": run.source_url,
                "encryption": cfg.storage.encryption.mode,
                "object_lock": cfg.storage.object_lock.model_dump() if cfg.storage.object_lock else None,
                SOURCE_ETAGS: dict(sorted(run.source_etags.items())),
            },
        )

    def delete_archived_sources(self, run: DayRun, manifest: Manifest) -> int:
        """After the manifest: one listing of the sources, then DeleteObjects of those still exactly as
        archived (1,000 a request). A source changed since its copy, or not in the manifest, is kept."""
        archived = PreviousArchive(manifest, run.dest_prefix)
        changed: list[str] = []

        def deletable() -> Any:
            for src in self.s3.iter_objects(run.src_bucket, run.src_prefix):
                rel = src.key[len(run.src_prefix) :]
                if archived.same_source(rel, src):
                    yield src.key
                elif rel in archived.by_rel:
                    changed.append(src.url)

        deleted = self.s3.delete_keys(run.src_bucket, deletable())
        if changed:
            log.warning(
                "kept %d source object(s) that changed since they were archived: %s",
                len(changed),
                changed[:20],
            )
        log.info("deleted %d source objects under %s after the verified archive", deleted, run.source_url)
        return deleted

    def apply_lifecycle(self) -> LifecycleSummary:
        """Merge the package's lifecycle rules into each bucket's rules (by rule ID, idempotent)."""
        from backup_pipelines.core.lifecycle import merge_rules, package_rules

        owned = package_rules(self.cfg)  # validates before any call
        buckets: dict[str, dict[str, Any]] = {}
        for bucket, rules in owned.items():
            merged = merge_rules(self.s3.lifecycle_rules(bucket), rules)
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
            buckets[bucket] = {"changed": merged.changed, "rules": [r.get("ID") for r in merged.rules]}
        return LifecycleSummary(buckets=buckets)


class _Progress:
    """A log line every 1,000 objects or 30 seconds, whichever comes first."""

    def __init__(self, run: DayRun) -> None:
        self.run = run
        self.last = time.monotonic()
        self.done_at = 0

    def tick(self) -> None:
        run = self.run
        handled = run.copied + len(run.failures)
        if handled - self.done_at >= PROGRESS_EVERY or time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.done_at, self.last = handled, time.monotonic()
            self.done()

    def done(self) -> None:
        run = self.run
        log.info(
            "%s: %d listed, %d copied and verified, %d already archived, %d failed",
            run.label,
            run.listed,
            run.copied,
            run.kept + run.carried,
            len(run.failures),
        )
