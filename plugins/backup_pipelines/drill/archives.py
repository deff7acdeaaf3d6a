"""The drill of an archive dataset (EMR outputs, Kafka archives, exports): thaw a sample of the
picked point's objects, read them, check their SHA-256 against the manifest; Kafka archives also
get their offsets checked against the index and a sample replayed into a scratch topic.

Cold objects (GLACIER / DEEP_ARCHIVE) need a RestoreObject first (``request_thaws``); the operator
waits for them in the triggerer, then calls ``verify``. A sampled object that is gone (404) is a
failed check; one that cannot be read because S3 errs or its thaw never completed is an ``error``
(the task is retried, the point unchanged) unless another sampled object already failed a check.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.checksums import file_sha256
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import DrillInfrastructureError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry
from backup_pipelines.core.presence import CHECK_PRESENCE, Presence, object_key
from backup_pipelines.core.regions import aws_conn_id, region_catalog
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.drill.checks import Recorder, offsets_check, sha256_check
from backup_pipelines.drill.plan import DatasetPlan, DrillPlan, scratch_topic
from backup_pipelines.drill.probes import download_failure
from backup_pipelines.drill.results import CHECK_REPLAY, CHECK_THAW, CheckResult, CheckStatus, DatasetResult

log = logging.getLogger(__name__)
DRILL_GROUP_ID = "backup-pipelines-dr-drill"


class ArchiveDrill:
    """One archive dataset's drill: thaw the sample, then verify it."""

    def __init__(self, cfg: BackupConfig, catalog: Catalog, plan: DrillPlan, s3: BackupS3Hook) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.plan = plan
        self.s3 = s3
        self.recorder = Recorder(cfg, catalog, plan)

    @classmethod
    def from_config(cls, cfg: BackupConfig, plan: DrillPlan) -> ArchiveDrill:
        s3 = BackupS3Hook(aws_conn_id=aws_conn_id(cfg, plan.source))
        return cls(cfg, region_catalog(cfg, plan.source, s3=s3), plan, s3)

    def point(self, entry: DatasetPlan) -> Manifest:
        assert entry.recovery_point_id is not None
        return self.catalog.read(entry.kind, entry.dataset, entry.recovery_point_id)

    def request_thaws(self, entry: DatasetPlan) -> dict[str, list[str]]:
        """RestoreObject for the sampled cold objects; bucket -> keys not readable yet."""
        manifest = self.point(entry)
        entries = {o.key: o for o in manifest.objects}
        pending: dict[str, list[str]] = {}
        for key in entry.sample:
            bucket, full_key = object_key(manifest, entries[key])
            status = self.s3.request_restore(
                bucket, full_key, days=self.cfg.dr_drill.restore_days, tier=self.cfg.dr_drill.restore_tier
            )
            if not status.readable:
                pending.setdefault(bucket, []).append(full_key)
        return pending

    def pick_failed(self, entry: DatasetPlan) -> DatasetResult:
        return self.recorder.pick_failed(self.recorder.start(entry), entry)

    def verify(self, entry: DatasetPlan, *, started: float, thaw_error: str | None) -> DatasetResult:
        """Read every sampled object and check it; raises ``DrillInfrastructureError`` (with
        ``.result``) when nothing was found wrong but not everything could be read."""
        manifest = self.point(entry)
        result = self.recorder.start(entry)
        result.captured_at = manifest.captured_at
        entries = {o.key: o for o in manifest.objects}
        result.checks += self.presence_checks(manifest)
        with tempfile.TemporaryDirectory(prefix="dr-drill-") as tmp:
            for n, key in enumerate(entry.sample):
                self._check_object(
                    manifest,
                    entries[key],
                    Path(tmp) / f"{n}.bin",
                    result,
                    first=n == 0,
                    thaw_error=thaw_error,
                )
                log.info("checked %d/%d: %s", n + 1, len(entry.sample), key)
        result.rto_seconds = time.time() - started
        errors = [c for c in result.checks if c.status == "error"]
        if errors and not any(c.status == "failed" for c in result.checks):
            # Nothing wrong was found, but not everything could be checked: leave the point as it
            # is, give the report the finding, and let Airflow retry.
            self.recorder.measure_rpo(result)
            error = DrillInfrastructureError(
                f"{result.key}: {len(errors)} sampled object(s) could not be read: {errors[0].describe()}"
            )
            error.result = result.model_dump(mode="json")
            raise error
        return self.recorder.finish(manifest, result)

    def presence_checks(self, manifest: Manifest) -> list[CheckResult]:
        """Every object of the point (not only the sample) is in S3 as recorded: listings only, so a
        deleted archive file is found by every drill, not only when the sample happens to hold it."""
        try:
            missing = Presence(self.s3).missing([manifest])
        except Exception as exc:  # S3 unreachable or denied: the check could not run
            return [
                CheckResult(
                    name=CHECK_PRESENCE,
                    status="error",
                    object=manifest.location,
                    detail=f"could not list the point's objects: {exc}",
                )
            ]
        if not missing:
            return [
                CheckResult(
                    name=CHECK_PRESENCE,
                    status="passed",
                    object=manifest.location,
                    detail=f"{len(manifest.objects)} object(s) present",
                )
            ]
        return [
            CheckResult(
                name=CHECK_PRESENCE,
                status="failed",
                object=m.url,
                detail=m.problem,
                recovery_point_id=m.recovery_point_id,
            )
            for m in missing[:20]
        ]

    def _check_object(
        self,
        manifest: Manifest,
        obj: ObjectEntry,
        local: Path,
        result: DatasetResult,
        *,
        first: bool,
        thaw_error: str | None,
    ) -> None:
        from backup_pipelines.kafka.parquet import read_offsets

        bucket, full_key = object_key(manifest, obj)
        url = f"s3://{bucket}/{full_key}"
        try:
            self.s3.client.download_file(bucket, full_key, str(local))
        except Exception as exc:  # gone is a finding; S3 trouble or a stuck thaw is not
            kind, detail = download_failure(exc, thaw_error)
            status: CheckStatus = "failed" if kind == "data" else "error"
            result.checks.append(CheckResult(name=CHECK_THAW, status=status, object=url, detail=detail))
            return
        result.checks.append(CheckResult(name=CHECK_THAW, status="passed", object=url))
        result.bytes_restored += local.stat().st_size
        result.checks.append(sha256_check(url, obj, file_sha256(local)))
        if manifest.kind == DatasetKind.KAFKA_ARCHIVE:
            no_record = manifest.details.get("offsets_without_record", {}).get(str(obj.partition), {})
            offsets = offsets_check(url, obj, local, read_offsets, int(no_record.get("offsets", 0)))
            result.checks.append(offsets)
            if first and offsets.ok and result.checks[-2].ok:
                result.checks.append(self.replay_check(manifest.dataset, url, local))

    def replay_check(self, topic: str, url: str, path: Path) -> CheckResult:
        """Replay the start of an archive file into a scratch topic and compare record for record."""
        from backup_pipelines.kafka.client import KafkaClient
        from backup_pipelines.kafka.files import compare_records, iter_file_slice
        from backup_pipelines.kafka.replay import Replayer

        scratch = scratch_topic(self.plan.drill_id, topic)
        kafka = KafkaClient(kafka_conn_id=self.cfg.connections.kafka, group_id=DRILL_GROUP_ID)
        replayer = Replayer(kafka)
        expected = list(iter_file_slice(path, limit=self.cfg.dr_drill.replay_sample_messages))
        kafka.ensure_topic(scratch, partitions=1)
        replayer.replay_records(expected, target_topic=scratch, target_partitions=1)
        actual = replayer.read_back(scratch, 0, max_records=len(expected))
        problems = compare_records(expected, actual)
        detail = f"{len(expected)} record(s) replayed into {scratch} and read back"
        if problems:
            return CheckResult(
                name=CHECK_REPLAY, status="failed", object=url, detail=f"{detail}: {'; '.join(problems[:5])}"
            )
        return CheckResult(name=CHECK_REPLAY, status="passed", object=url, detail=detail)
