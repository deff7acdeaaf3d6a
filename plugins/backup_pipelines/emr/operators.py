"""Operators of ``emr_daily_output_archive``: wait for a job's output, archive it, keep the lifecycle.

- ``EmrOutputMarkerSensor``: the amazon provider's ``S3KeySensor`` on the job's success marker
  (deferrable or reschedule), plus the EMR step / EMR Serverless job state when the config names
  one; a timeout fails with a message naming the job and the date.
- ``EmrArchiveOperator``: server-side copies of every output object with bounded concurrency,
  each verified (``S3ArchiveHook.copy_verified``), then the manifest, written last.
- ``ApplyLifecyclePolicyOperator``: merges the configured rule into the bucket's rules by ID.

All three take the job *name* and read the rest from the config at run time, so the DAG file
stays a thin loop-free mapping over job names.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferralTimeout

from backup_pipelines.core.config import BackupConfig, EmrJob, load_config
from backup_pipelines.core.errors import ConfigError, MarkerTimeoutError, VerificationError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.core.s3 import CopyResult, S3ArchiveHook, S3Object


def find_job(cfg: BackupConfig, job_name: str) -> EmrJob:
    for job in cfg.emr_archive.jobs:
        if job.name == job_name:
            return job
    known = ", ".join(j.name for j in cfg.emr_archive.jobs) or "none"
    raise ConfigError(f"emr_archive.jobs has no job named {job_name!r} (configured: {known})")


def archive_day(context: Context) -> str:
    """The day a run archives: its data interval's start (``ds``); manual runs must carry one."""
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:
        raise ConfigError(
            "this run has no logical date or data interval, so there is no day to archive; "
            "trigger emr_daily_output_archive with a logical date (the day after the one to archive)"
        )
    return start.date().isoformat()


def render_source(operator: BaseOperator, job: EmrJob, context: Context) -> str:
    """The job's source URL for the archived day: ``{{ ds }}`` means the data interval's start day.

    Manual runs (and ``dag.test``) of a data-interval DAG have a logical date at the interval's
    *end*, so the context's own ``ds`` would point at the next day.
    """
    day = archive_day(context)
    local: Any = {**context, "ds": day, "ds_nodash": day.replace("-", "")}
    return str(operator.render_template(job.source, local))


def archive_prefix(cfg: BackupConfig, job: EmrJob, day: str) -> str:
    return f"{cfg.emr_archive.prefix}{job.name}/dt={day}/"


class EmrOutputMarkerSensor(BaseSensorOperator):
    """Waits for ``<source>/<success_marker>`` (and the EMR step/job state when configured).

    Deferrable through the amazon provider's ``S3KeyTrigger`` (which needs the provider's
    ``aiobotocore`` extra in the triggerer); otherwise pokes with ``S3Hook.check_for_key``. The
    provider's ``S3KeySensor`` is not subclassed only because importing it at DAG parse time costs
    more than the parse budget; the hook and trigger are imported when the task runs.
    """

    template_fields = ("job_name",)

    def __init__(
        self,
        *,
        job_name: str,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable

    def _job(self) -> EmrJob:
        return find_job(load_config(), self.job_name)

    def _marker_url(self, context: Context) -> str:
        job = self._job()
        return render_source(self, job, context).rstrip("/") + "/" + job.success_marker

    def _timeout_error(self, context: Context) -> MarkerTimeoutError:
        return MarkerTimeoutError(
            f"EMR job {self.job_name!r} for {archive_day(context)}: {self._marker_url(context)} did not "
            f"appear within {self.timeout:.0f}s; the job has not finished or has failed. Check the job, "
            "then clear this task (or re-run the date) to archive it"
        )

    def poke(self, context: Context) -> bool:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        job = self._job()
        if (job.emr_step or job.emr_serverless) and not self._emr_succeeded(job, context):
            return False
        marker = self._marker_url(context)
        found = bool(S3Hook(aws_conn_id=self.aws_conn_id).check_for_key(marker))
        self.log.info("%s %s", marker, "found" if found else "not there yet")
        return found

    def _emr_succeeded(self, job: EmrJob, context: Context) -> bool:
        """The configured EMR step / Serverless job run, via the provider's hooks (fails on FAILED)."""
        if job.emr_step is not None:
            from airflow.providers.amazon.aws.hooks.emr import EmrHook

            emr: Any = EmrHook(aws_conn_id=self.aws_conn_id).conn
            step = emr.describe_step(ClusterId=job.emr_step.cluster_id, StepId=job.emr_step.step_id).get(
                "Step", {}
            )
            state = step.get("Status", {}).get("State")
            if state in ("CANCELLED", "FAILED", "INTERRUPTED"):
                raise VerificationError(
                    f"EMR job {job.name!r} for {archive_day(context)}: step {job.emr_step.step_id} is {state}"
                )
            if state != "COMPLETED":
                return False
        if job.emr_serverless is not None:
            from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

            serverless: Any = EmrServerlessHook(aws_conn_id=self.aws_conn_id).conn
            run = serverless.get_job_run(
                applicationId=job.emr_serverless.application_id, jobRunId=job.emr_serverless.job_run_id
            ).get("jobRun", {})
            state = run.get("state")
            if state in EmrServerlessHook.JOB_FAILURE_STATES:
                raise VerificationError(
                    f"EMR job {job.name!r} for {archive_day(context)}: EMR Serverless run "
                    f"{job.emr_serverless.job_run_id} is {state}"
                )
            if state not in EmrServerlessHook.JOB_SUCCESS_STATES:
                return False
        return True

    def execute(self, context: Context) -> None:
        job = self._job()
        self.timeout = job.sensor_timeout.total_seconds()
        # The EMR state check runs in poke, so jobs that name one are poked (reschedule mode).
        if not self.deferrable or job.emr_step or job.emr_serverless:
            try:
                super().execute(context)
            except AirflowSensorTimeout:
                raise self._timeout_error(context) from None
            return
        if self.poke(context):
            return
        from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

        from backup_pipelines.core.catalog import split_s3_url

        bucket, key = split_s3_url(self._marker_url(context))
        self.defer(
            trigger=S3KeyTrigger(
                bucket_name=bucket,
                bucket_key=key,
                aws_conn_id=self.aws_conn_id,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "no event")
            raise VerificationError(f"EMR job {self.job_name!r}: waiting for the marker failed: {message}")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            raise self._timeout_error(context) from None


class EmrArchiveOperator(BaseOperator):
    """Archive one job's outputs of one day: verified server-side copies, then the manifest."""

    template_fields = ("job_name",)

    def __init__(self, *, job_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.catalog import Catalog, split_s3_url, utcnow
        from backup_pipelines.core.s3 import S3ArchiveHook

        cfg = load_config()
        job = find_job(cfg, self.job_name)
        day = archive_day(context)
        source_url = render_source(self, job, context)
        src_bucket, src_prefix = split_s3_url(source_url)
        dest_bucket = cfg.storage.archive_bucket
        dest_prefix = archive_prefix(cfg, job, day)
        settings = cfg.emr_archive
        hook = S3ArchiveHook(aws_conn_id=cfg.connections.aws, max_pool_connections=settings.concurrency + 4)

        sources = hook.list_objects(src_bucket, src_prefix)
        if not sources:
            raise VerificationError(f"EMR job {job.name!r} for {day}: {source_url} holds no objects")
        self.log.info(
            "archiving %d objects (%d bytes) of %s to s3://%s/%s with %d-way concurrency",
            len(sources),
            sum(s.size for s in sources),
            source_url,
            dest_bucket,
            dest_prefix,
            settings.concurrency,
        )
        now = utcnow()
        results = copy_all(
            hook,
            sources,
            src_prefix=src_prefix,
            dest_bucket=dest_bucket,
            dest_prefix=dest_prefix,
            cfg=cfg,
            now=now,
            log=self.log,
        )
        copied = sum(r.copied for r in results)
        catalog = Catalog.from_config(cfg)
        manifest = build_manifest(
            cfg,
            job=job,
            day=day,
            source_url=source_url,
            results=results,
            context=context,
            now=now,
            catalog=catalog,
        )
        catalog.write(manifest)  # last: the recovery point exists only once every copy is verified
        if settings.delete_source_after_archive:
            self._delete_archived_sources(hook, src_bucket, sources, source_url)
        summary = {
            "job": job.name,
            "date": day,
            "objects": len(results),
            "copied": copied,
            "skipped": len(results) - copied,
            "bytes": sum(r.size for r in results),
            "bytes_through_worker": hook.bytes_read,
            "location": manifest.location,
        }
        self.log.info("archive of %s for %s done: %s", job.name, day, summary)
        return summary

    def _delete_archived_sources(
        self, hook: S3ArchiveHook, bucket: str, sources: list[S3Object], source_url: str
    ) -> None:
        """Delete the sources the archive now holds; one changed since it was copied is kept."""
        unchanged: list[str] = []
        changed: list[str] = []
        for src in sources:
            head = hook.head(bucket, src.key)
            same = head is not None and head["ETag"] == src.etag and int(head["ContentLength"]) == src.size
            (unchanged if same else changed).append(src.key)
        if changed:
            self.log.warning(
                "kept %d source object(s) that changed or vanished since they were archived: %s",
                len(changed),
                changed[:20],
            )
        hook.delete_keys(bucket, unchanged)
        self.log.info(
            "deleted %d source objects under %s after the verified archive", len(unchanged), source_url
        )


def copy_all(
    hook: S3ArchiveHook,
    sources: list[S3Object],
    *,
    src_prefix: str,
    dest_bucket: str,
    dest_prefix: str,
    cfg: BackupConfig,
    now: datetime,
    log: Any,
) -> list[CopyResult]:
    """Copy and verify every source with ``cfg.emr_archive.concurrency`` threads; fail on any error."""
    settings = cfg.emr_archive
    results: list[CopyResult] = []
    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="emr-archive") as pool:
        futures = {
            pool.submit(
                hook.copy_verified,
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
    cfg: BackupConfig,
    *,
    job: EmrJob,
    day: str,
    source_url: str,
    results: list[CopyResult],
    context: Context,
    now: datetime,
    catalog: Any,
) -> Any:
    """The manifest of a day's archive; a re-run with the same objects keeps the first capture time."""
    import airflow

    from backup_pipelines import __version__
    from backup_pipelines.core.catalog import Manifest, ObjectEntry, Verification

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
    previous = catalog.get("emr_output", job.name, rp_id)
    captured_at = previous.captured_at if previous is not None and previous.objects == objects else now
    checks = sorted({f"copy-{r.verified_by}" for r in results})
    return Manifest(
        kind="emr_output",
        dataset=job.name,
        recovery_point_id=rp_id,
        interval_start=context.get("data_interval_start"),
        interval_end=context.get("data_interval_end"),
        captured_at=captured_at,
        location=f"s3://{cfg.storage.archive_bucket}/{archive_prefix(cfg, job, day)}",
        storage_class=cfg.emr_archive.storage_class,
        objects=objects,
        software={"backup_pipelines": __version__, "airflow": airflow.__version__},
        producer={"dag_id": "emr_daily_output_archive", "run_id": str(context.get("run_id", ""))},
        verification=Verification(state="verified", verified_at=now, checks=checks),
        details={
            "job": job.name,
            "date": day,
            "source": source_url,
            "encryption": cfg.storage.encryption.mode,
            "object_lock": cfg.storage.object_lock.model_dump() if cfg.storage.object_lock else None,
        },
    )


class ApplyLifecyclePolicyOperator(BaseOperator):
    """Merge the configured lifecycle rule into the archive bucket's rules (by rule ID, idempotent)."""

    template_fields = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.lifecycle import TransitionSpec, build_rule, merge_rules
        from backup_pipelines.core.s3 import S3ArchiveHook

        cfg = load_config()
        lc = cfg.emr_archive.lifecycle
        rule = build_rule(  # validates before any call
            rule_id=lc.rule_id,
            prefix=cfg.emr_archive.prefix,
            transitions=[TransitionSpec(t.days, t.storage_class) for t in lc.transitions],
            expiration_days=lc.expiration_days,
            abort_incomplete_multipart_days=lc.abort_incomplete_multipart_days,
        )
        bucket = cfg.storage.archive_bucket
        hook = S3ArchiveHook(aws_conn_id=cfg.connections.aws)
        merged = merge_rules(hook.lifecycle_rules(bucket), [rule])
        if merged.changed:
            hook.put_lifecycle_rules(bucket, merged.rules)
        self.log.info(
            "lifecycle of s3://%s: %s (added %s, replaced %s, kept %d foreign rule(s) %s)",
            bucket,
            "updated" if merged.changed else "unchanged",
            merged.added,
            merged.replaced,
            len(merged.kept),
            merged.kept,
        )
        return {"changed": merged.changed, "rules": [r.get("ID") for r in merged.rules]}
