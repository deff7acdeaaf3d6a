"""Operators of ``emr_daily_output_archive``: wait for a job's output, archive it, keep the lifecycle.

- ``EmrOutputMarkerSensor``: the job's success marker (deferrable through the amazon provider's
  ``S3KeyTrigger``, or reschedule), plus the EMR step / EMR Serverless job state when the config
  names one; a timeout fails with a message naming the job and the date.
- ``EmrArchiveOperator``: ``EmrArchiveService.archive`` for the run's day.
- ``ApplyLifecyclePolicyOperator``: ``EmrArchiveService.apply_lifecycle`` (the package's rules on
  both buckets).

All three take the job *name* and read the rest from the config at run time, so the DAG file
stays a thin loop over job names: one task group per job, its asset declared.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferralTimeout

from backup_pipelines.core.assets import EmitsRecoveryPoints
from backup_pipelines.core.config import EmrJob, load_config
from backup_pipelines.core.errors import ConfigError, MarkerTimeoutError, VerificationError
from backup_pipelines.emr.archive import find_job

if TYPE_CHECKING:
    from airflow.sdk import Context


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

        from backup_pipelines.core.s3 import split_s3_url

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


class EmrArchiveOperator(EmitsRecoveryPoints, BaseOperator):
    """Archive one job's outputs of one day: verified server-side copies, then the manifest."""

    template_fields = ("job_name",)

    def __init__(self, *, job_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.emr.archive import EmrArchiveService

        cfg = load_config()
        summary = EmrArchiveService.from_config(cfg).archive(
            self.job_name,
            day=archive_day(context),
            source_url=render_source(self, find_job(cfg, self.job_name), context),
            interval=(context.get("data_interval_start"), context.get("data_interval_end")),
            run_id=str(context.get("run_id", "")),
        )
        self.emit_recovery_point_of(context, "emr_output", summary.job, f"dt={summary.date}")
        return summary.model_dump(mode="json")


class ApplyLifecyclePolicyOperator(BaseOperator):
    """Merge the package's lifecycle rules into both buckets' rules (by rule ID, idempotent): the EMR
    rule, and one rule per prefix the package writes that aborts incomplete multipart uploads."""

    template_fields = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.emr.archive import EmrArchiveService

        return EmrArchiveService.from_config(load_config()).apply_lifecycle().model_dump(mode="json")
