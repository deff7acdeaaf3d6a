"""Operators of the weekly Kafka archive and of the archive replay: each builds its service from the
config, calls it and returns a typed summary (the work is in ``weekly``, ``archive``, ``replay``)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core.assets import EmitsRecoveryPoints
from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import ConfigError, ObjectNotRestoredError, OffsetGapError
from backup_pipelines.core.regions import aws_conn_id

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.kafka.specs import GuardFinding


def loss_alert(cfg: BackupConfig, findings: Sequence[GuardFinding], *, run_id: str) -> str:
    """Email the on-call: which topic, partition and offsets were deleted before being archived."""
    lines = [
        f"{f.topic}[{lost['partition']}]: offsets {lost['first']}-{lost['last']} "
        f"({lost['last'] - lost['first'] + 1} events)"
        for f in findings
        for lost in f.lost
    ]
    topics = ", ".join(sorted({f.topic for f in findings if f.lost}))
    return _guard_email(
        cfg,
        f"[backup-pipelines] DATA LOSS: Kafka events deleted before archiving ({topics})",
        f"The Kafka retention guard of kafka_weekly_glacier_archive (run {run_id}) found offsets that "
        "Kafka's retention deleted before they reached an archive. They cannot be recovered from the "
        "archive tier:",
        lines,
        "See docs/runbooks/kafka-event-recovery.md, section 'Data lost before archiving'.",
    )


def backlog_alert(cfg: BackupConfig, findings: Sequence[GuardFinding], *, run_id: str) -> str:
    """Email the on-call: records not archived yet that Kafka's retention is about to delete."""
    topics = ", ".join(sorted({f.topic for f in findings if f.at_risk}))
    return _guard_email(
        cfg,
        f"[backup-pipelines] RPO BREACH: Kafka backlog at risk of deletion before archiving ({topics})",
        f"The Kafka retention guard of kafka_weekly_glacier_archive (run {run_id}) found records that "
        "no archive holds yet and that are older than the topic's retention.ms minus "
        "kafka_archive.retention_grace: Kafka may delete them before they are archived.",
        [line for f in findings for line in f.at_risk],
        "This run archives them now; a failed or late run loses them. Raise retention.ms or run the "
        "archive more often. See docs/runbooks/kafka-event-recovery.md, section 'Backlog at risk'.",
    )


def _guard_email(cfg: BackupConfig, subject: str, intro: str, lines: list[str], advice: str) -> str:
    """Send one of the guard's emails (a paragraph, one item per partition, what to do); returns
    the items as one line for the task's error or log."""
    from backup_pipelines.core import notify

    body = notify.Body().para(intro).items(lines).para(advice)
    notify.send(
        notify.Message.of(subject, body),
        smtp_conn_id=cfg.connections.smtp,
        from_email=cfg.alerts.from_email,
        to=cfg.alerts.recipients,
    )
    return "; ".join(lines)


class KafkaArchiveGuardOperator(BaseOperator):
    """Retention guard and plan: one archive spec per topic-partition (the map of the next task).

    Fails before any task is mapped when a configured topic does not exist (naming the closest
    existing topics). Fails (with an email naming topic, partition and offsets) when a partition's
    low watermark is past the next offset to archive; emails (and goes on archiving) when records
    not archived yet are older than ``retention.ms`` minus the grace; warns when ``retention.ms``
    < window + grace.
    """

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.kafka.weekly import WeeklyArchive

        cfg = load_config()
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            raise ConfigError(
                "kafka_weekly_glacier_archive needs a data interval; trigger it with a logical date"
            )
        if not cfg.kafka_archive.topics:
            self.log.warning("kafka_archive.topics is empty: nothing to archive")
        specs, findings = WeeklyArchive.from_config(cfg).plan(start, end)
        if any(f.lost for f in findings):
            detail = loss_alert(cfg, findings, run_id=context["ti"].run_id)
            raise OffsetGapError(f"Kafka offsets deleted before they were archived: {detail}")
        if any(f.at_risk for f in findings):
            detail = backlog_alert(cfg, findings, run_id=context["ti"].run_id)
            self.log.warning("Kafka backlog at risk of deletion before archiving: %s", detail)
        self.log.info("archive plan: %d topic-partition(s) for window [%s, %s)", len(specs), start, end)
        return [spec.model_dump(mode="json") for spec in specs]


class KafkaPartitionArchiveOperator(BaseOperator):
    """Archive one topic-partition of the window (mapped: one task instance per partition)."""

    template_fields: Sequence[str] = ("spec",)

    def __init__(self, *, spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.kafka.specs import PartitionSpec
        from backup_pipelines.kafka.weekly import WeeklyArchive

        weekly = WeeklyArchive.from_config(load_config())
        with tempfile.TemporaryDirectory(prefix="kafka-archive-") as spool:
            return weekly.archive(PartitionSpec.model_validate(self.spec), spool_dir=spool).model_dump(
                mode="json"
            )


class _ResultsOperator(BaseOperator):
    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def _results(self) -> list[Any]:
        from backup_pipelines.kafka.specs import PartitionResult

        return [PartitionResult.model_validate(r) for r in self.results or []]


class KafkaArchiveCheckOperator(_ResultsOperator):
    """Before any manifest is written: consecutive archives are contiguous, no gap, no overlap."""

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.kafka.weekly import WeeklyArchive

        results = self._results()
        problems = WeeklyArchive.from_config(load_config()).check(results)
        if problems:
            raise OffsetGapError("archive coverage check failed: " + "; ".join(problems[:20]))
        records = sum(r.records for r in results)
        self.log.info("coverage check passed: %d partition(s), %d records", len(results), records)
        return {"partitions": len(results), "records": records}


class KafkaArchiveManifestOperator(EmitsRecoveryPoints, _ResultsOperator):
    """Write one manifest per topic, last, once the data and the coverage check are complete."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.kafka.weekly import WeeklyArchive

        ti = context["ti"]
        producer = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
        manifests = WeeklyArchive.from_config(load_config()).write_manifests(
            self._results(), producer=producer
        )
        for written in manifests:
            self.emit_recovery_point(context, written)
        return [
            {
                "topic": m.dataset,
                "recovery_point_id": m.recovery_point_id,
                "messages": m.message_count,
                "files": len(m.objects),
                "bytes": m.size_bytes,
                "retention_warning": m.details.get("retention_warning"),
            }
            for m in manifests
        ]


# -- replay -----------------------------------------------------------------------------------------
class KafkaReplayPlanOperator(BaseOperator):
    """Find the archive files that hold the asked range (the ``kafka_archive_replay`` form)."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.regions import region_catalog
        from backup_pipelines.kafka.params import ReplayParams
        from backup_pipelines.kafka.replay import plan_replay

        cfg = load_config()
        params = ReplayParams.from_context(context)
        plan = plan_replay(cfg, region_catalog(cfg, params.source), params)
        files = plan.files
        self.log.info(
            "replay plan: %d file(s), %d bytes, up to %d records of %s -> %s%s",
            len(files),
            sum(f["size"] for f in files),
            sum(f.get("records") or 0 for f in files),
            plan.topic,
            plan.target_topic,
            " (dry run)" if plan.dry_run else "",
        )
        for entry in files:
            self.log.info(
                "  %s partition %s offsets %s-%s (%s)",
                entry["key"],
                entry["partition"],
                entry["first_offset"],
                entry["last_offset"],
                entry.get("storage_class"),
            )
        return plan.model_dump(mode="json")


class KafkaArchiveRestoreOperator(BaseOperator):
    """Restore the plan's GLACIER files (RestoreObject, the form's tier), then wait in the triggerer."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(
        self, *, plan: Any, poll_interval: float = 300.0, timeout_hours: float = 48.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.poll_interval = poll_interval
        self.timeout_hours = timeout_hours

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.s3 import BackupS3Hook
        from backup_pipelines.core.s3_restore import S3RestoreTrigger
        from backup_pipelines.kafka.params import ReplayParams
        from backup_pipelines.kafka.replay import ReplayPlan

        plan = ReplayPlan.model_validate(self.plan)
        if plan.dry_run:
            self.log.info("dry run: no restore requested")
            return {"restored": 0, "dry_run": True}
        params = ReplayParams.from_context(context)  # restore_tier and restore_days checked there
        cfg = load_config()
        s3 = BackupS3Hook(aws_conn_id=aws_conn_id(cfg, plan.source))
        pending = []
        for entry in plan.files:
            status = s3.request_restore(
                plan.bucket, entry["key"], days=params.restore_days, tier=params.restore_tier
            )
            if not status.readable:
                pending.append(entry["key"])
        if not pending:
            self.log.info("all %d file(s) are readable", len(plan.files))
            return {"restored": len(plan.files), "dry_run": False}
        self.log.info("waiting for %d %s restore(s) in the triggerer", len(pending), params.restore_tier)
        self.defer(
            trigger=S3RestoreTrigger(
                bucket=plan.bucket,
                keys=pending,
                aws_conn_id=aws_conn_id(cfg, plan.source),
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(hours=self.timeout_hours),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise ObjectNotRestoredError(f"restore of the archive files failed: {event.get('message')}")
        return {"restored": len(event.get("keys", [])), "dry_run": False}


class KafkaReplayOperator(BaseOperator):
    """Verify each file's SHA-256 and offsets, then produce its records in offset order."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.s3 import BackupS3Hook
        from backup_pipelines.kafka.client import KafkaClient
        from backup_pipelines.kafka.replay import ReplayPlan, replay_plan

        cfg = load_config()
        source = ReplayPlan.model_validate(self.plan).source
        with tempfile.TemporaryDirectory(prefix="kafka-replay-") as spool:
            result = replay_plan(
                KafkaClient.from_config(cfg),
                BackupS3Hook(aws_conn_id=aws_conn_id(cfg, source)),
                dict(self.plan),
                Path(spool),
            )
        self.log.info("replay result: %s", result)
        return result
