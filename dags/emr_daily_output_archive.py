"""emr_daily_output_archive: each day's EMR job outputs, copied server-side into the archive bucket."""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup

from backup_pipelines.core.assets import recovery_point_asset
from backup_pipelines.core.config import load_config
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.dagkit import dag_kwargs, node_id
from backup_pipelines.emr.operators import (
    ApplyLifecyclePolicyOperator,
    EmrArchiveOperator,
    EmrOutputMarkerSensor,
)

DOC = """
### EMR daily output archive (ADR-16 Tier 2/3)

For every job in `emr_archive.jobs`, one task group (`job_<name>`) archives the day of the run's
data interval (`ds`):

1. **wait_for_output** waits for the job's success marker (`_SUCCESS`, configurable) under the
   job's `source` (and, when configured, for the EMR step / EMR Serverless run to succeed).
   A timeout fails with the job and the date in the message.
2. **archive** copies every output object server-side to
   `s3://<archive_bucket>/emr/<job>/dt=<date>/` (one conditional CopyObject per object, bounded
   concurrency, multipart copy above the threshold), verifies each copy's SHA-256 from S3's answer
   and one listing, then writes the manifest to the catalog, last. An object that cannot be copied
   does not stop the others; the task then fails naming each one, and writes no manifest.
   Re-runs and backfills of a date copy only what changed (listings only for an unchanged day,
   whose manifest is left as it is). Its outlet is the job's asset, `backup://emr_output/<job>`:
   one event per archived day.

**apply_lifecycle_policy** merges the package's lifecycle rules into both buckets' rules by ID,
keeping foreign rules: the EMR rule (GLACIER_IR after 30 days, DEEP_ARCHIVE after 180, never
expire) and, for every prefix the package writes, a rule that aborts incomplete multipart uploads.

Backfill: `airflow backfill create --dag-id emr_daily_output_archive --from-date ... --to-date ...`.
Recovery: docs/runbooks/emr-output-recovery.md.
"""

cfg = load_config()
settings = cfg.emr_archive

with DAG(
    **dag_kwargs(
        "emr_daily_output_archive",
        schedule=settings.schedule or None,
        doc_md=DOC,
        tags=["emr", "s3", "archive"],
        cfg=cfg,
    )
) as dag:
    lifecycle = ApplyLifecyclePolicyOperator(task_id="apply_lifecycle_policy")

    for job in settings.jobs:
        # One group per job, the job's asset declared (not an alias): Airflow creates it when it
        # parses this file. Through an alias, the asset and its link to the alias are created by
        # the first event, and two runs archiving the job at once (a backfill beside the scheduled
        # run) both insert them: the API server fails the loser though its archive succeeded.
        with TaskGroup(group_id=node_id("job", job.name)):
            wait = EmrOutputMarkerSensor(
                task_id="wait_for_output",
                job_name=job.name,
                aws_conn_id=cfg.connections.aws,
                deferrable=settings.deferrable,
                mode="poke" if settings.deferrable else "reschedule",
                poke_interval=settings.poke_interval.total_seconds(),
            )
            wait >> EmrArchiveOperator(
                task_id="archive",
                job_name=job.name,
                outlets=[recovery_point_asset(DatasetKind.EMR_OUTPUT, job.name)],
            )
