"""Operators of the weekly Kafka archive and of the archive replay; the work is in the hook module."""

from __future__ import annotations

import html
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import (
    ConfigError,
    ObjectNotRestoredError,
    OffsetGapError,
    RecoveryPointNotFoundError,
    UnsafeOperationError,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.kafka.archive import GuardFinding, WeeklyArchive


def _flag(value: bool | str | None) -> bool:
    """Params render as text (``render_template_as_native_obj`` is off): accept both forms."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _optional(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text in ("", "None", "null") else text


def _optional_int(value: Any, name: str) -> int | None:
    text = _optional(value)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an integer") from None


def _optional_time(value: Any, name: str) -> datetime | None:
    from datetime import UTC

    text = _optional(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an ISO 8601 time (e.g. 2026-11-16T04:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _weekly(cfg: BackupConfig) -> WeeklyArchive:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.s3 import S3ArchiveHook
    from backup_pipelines.kafka.archive import KafkaArchiveHook, WeeklyArchive

    kafka = KafkaArchiveHook(
        kafka_conn_id=cfg.connections.kafka, group_id=cfg.kafka_archive.consumer_group_id
    )
    return WeeklyArchive(kafka, S3ArchiveHook(aws_conn_id=cfg.connections.aws), Catalog.from_config(cfg), cfg)


def send_loss_alert(cfg: BackupConfig, findings: Sequence[GuardFinding], *, run_id: str) -> str:
    """Email the on-call: which topic, partition and offsets were deleted before being archived."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    lines = [
        f"{f.topic}[{lost['partition']}]: offsets {lost['first']}-{lost['last']} "
        f"({lost['last'] - lost['first'] + 1} events)"
        for f in findings
        for lost in f.lost
    ]
    topics = ", ".join(sorted({f.topic for f in findings if f.lost}))
    subject = f"[backup-pipelines] DATA LOSS: Kafka events deleted before archiving ({topics})"
    body = (
        "<p>The Kafka retention guard of <b>kafka_weekly_glacier_archive</b> (run "
        f"{html.escape(run_id)}) found offsets that Kafka's retention deleted before they reached an "
        "archive. They cannot be recovered from the archive tier:</p><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        + "</ul><p>See docs/runbooks/kafka-event-recovery.md, section 'Data lost before archiving'.</p>"
    )
    with SmtpHook(smtp_conn_id=cfg.connections.smtp) as smtp:
        smtp.send_email_smtp(
            to=cfg.alerts.recipients, subject=subject, html_content=body, from_email=cfg.alerts.from_email
        )
    return "; ".join(lines)


class KafkaArchiveGuardOperator(BaseOperator):
    """Retention guard and plan: one archive spec per topic-partition (the map of the next task).

    Fails (with an email naming topic, partition and offsets) when a partition's low watermark is
    past the next offset to archive; warns when ``retention.ms`` < window + grace.
    """

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> list[dict[str, Any]]:

        cfg = load_config()
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            raise ConfigError(
                "kafka_weekly_glacier_archive needs a data interval; trigger it with a logical date"
            )
        if not cfg.kafka_archive.topics:
            self.log.warning("kafka_archive.topics is empty: nothing to archive")
        specs, findings = _weekly(cfg).plan(start, end)
        if any(f.lost for f in findings):
            detail = send_loss_alert(cfg, findings, run_id=context["ti"].run_id)
            raise OffsetGapError(f"Kafka offsets deleted before they were archived: {detail}")
        for finding in findings:
            if finding.retention_warning:
                self.log.warning("%s", finding.retention_warning)
        self.log.info("archive plan: %d topic-partition(s) for window [%s, %s)", len(specs), start, end)
        return specs


class KafkaPartitionArchiveOperator(BaseOperator):
    """Archive one topic-partition of the window (mapped: one task instance per partition)."""

    template_fields: Sequence[str] = ("spec",)

    def __init__(self, *, spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def execute(self, context: Context) -> dict[str, Any]:

        cfg = load_config()
        with tempfile.TemporaryDirectory(prefix="kafka-archive-") as spool:
            return _weekly(cfg).archive(dict(self.spec), spool_dir=spool)


class KafkaArchiveCheckOperator(BaseOperator):
    """Before any manifest is written: consecutive archives are contiguous, no gap, no overlap."""

    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Context) -> dict[str, Any]:

        results = list(self.results or [])
        problems = _weekly(load_config()).check(results)
        if problems:
            raise OffsetGapError("archive coverage check failed: " + "; ".join(problems[:20]))
        records = sum(r["records"] for r in results)
        self.log.info("coverage check passed: %d partition(s), %d records", len(results), records)
        return {"partitions": len(results), "records": records}


class KafkaArchiveManifestOperator(BaseOperator):
    """Write one manifest per topic, last, once the data and the coverage check are complete."""

    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Context) -> list[dict[str, Any]]:

        ti = context["ti"]
        producer = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
        manifests = _weekly(load_config()).write_manifests(list(self.results or []), producer=producer)
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


# -- replay ---------------------------------------------------------------------------------------
class KafkaReplayPlanOperator(BaseOperator):
    """Find the archive files that hold the asked range, through the manifests' index."""

    template_fields: Sequence[str] = (
        "topic",
        "start_time",
        "end_time",
        "start_offset",
        "end_offset",
        "partitions",
        "target_topic",
        "confirm_same_topic",
        "preview",
        "max_messages",
    )

    def __init__(
        self,
        *,
        topic: str,
        start_time: str | None = None,
        end_time: str | None = None,
        start_offset: str | int | None = None,
        end_offset: str | int | None = None,
        partitions: str | None = None,
        target_topic: str | None = None,
        confirm_same_topic: bool | str = False,
        preview: bool | str = True,
        max_messages: str | int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topic = topic
        self.start_time = start_time
        self.end_time = end_time
        self.start_offset = start_offset
        self.end_offset = end_offset
        self.partitions = partitions
        self.target_topic = target_topic
        self.confirm_same_topic = confirm_same_topic
        self.preview = preview  # the form's dry_run (BaseOperator.dry_run is a method)
        self.max_messages = max_messages

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.kafka.archive import KIND, select_replay_files

        cfg = load_config()
        topic = _optional(self.topic)
        if topic is None:
            raise ConfigError("topic: name the archived topic to replay")
        target = _optional(self.target_topic) or f"{topic}.replay"
        if target == topic and not _flag(self.confirm_same_topic):
            raise UnsafeOperationError(
                f"target_topic {target!r} is the source topic: replaying into it duplicates live events; "
                "set confirm_same_topic to do it anyway"
            )
        partitions_text = _optional(self.partitions)
        try:
            partitions = [int(p) for p in partitions_text.split(",")] if partitions_text else None
        except ValueError:
            raise ConfigError(
                f"partitions: {partitions_text!r} is not a comma-separated list of ints"
            ) from None
        window = {
            "start_ms": _ms(_optional_time(self.start_time, "start_time")),
            "end_ms": _ms(_optional_time(self.end_time, "end_time")),
            "start_offset": _optional_int(self.start_offset, "start_offset"),
            "end_offset": _optional_int(self.end_offset, "end_offset"),
        }
        listing = Catalog.from_config(cfg).list_points(KIND, topic)
        if not listing.points:
            raise RecoveryPointNotFoundError(f"topic {topic!r} has no archive in the catalog")
        files = select_replay_files(listing.points, partitions=partitions, **window)
        plan = {
            "topic": topic,
            "target_topic": target,
            "bucket": cfg.storage.archive_bucket,
            "dry_run": _flag(self.preview),
            "max_messages": _optional_int(self.max_messages, "max_messages"),
            "window": window,
            "files": files,
        }
        self.log.info(
            "replay plan: %d file(s), %d bytes, up to %d records of %s -> %s%s",
            len(files),
            sum(f["size"] for f in files),
            sum(f["records"] or 0 for f in files),
            topic,
            target,
            " (dry run)" if plan["dry_run"] else "",
        )
        for entry in files:
            self.log.info(
                "  %s partition %s offsets %s-%s (%s)",
                entry["key"],
                entry["partition"],
                entry["first_offset"],
                entry["last_offset"],
                entry["storage_class"],
            )
        return plan


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class KafkaArchiveRestoreOperator(BaseOperator):
    """Restore the plan's GLACIER files (RestoreObject, chosen tier), then wait in the triggerer."""

    template_fields: Sequence[str] = ("plan", "tier", "days")

    def __init__(
        self,
        *,
        plan: Any,
        tier: str = "Bulk",
        days: int | str = 1,
        poll_interval: float = 300.0,
        timeout_hours: float = 48.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.tier = tier
        self.days = days
        self.poll_interval = poll_interval
        self.timeout_hours = timeout_hours

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import timedelta

        from backup_pipelines.core.s3 import S3ArchiveHook
        from backup_pipelines.core.s3_restore import S3RestoreTrigger

        plan = dict(self.plan)
        if plan["dry_run"]:
            self.log.info("dry run: no restore requested")
            return {"restored": 0, "dry_run": True}
        tier = str(self.tier)
        if tier not in ("Expedited", "Standard", "Bulk"):
            raise ConfigError(f"restore_tier: {tier!r} is not one of Expedited, Standard, Bulk")
        cfg = load_config()
        s3 = S3ArchiveHook(aws_conn_id=cfg.connections.aws)
        pending = []
        for entry in plan["files"]:
            status = s3.request_restore(plan["bucket"], entry["key"], days=int(self.days), tier=tier)
            if not status.readable:
                pending.append(entry["key"])
        if not pending:
            self.log.info("all %d file(s) are readable", len(plan["files"]))
            return {"restored": len(plan["files"]), "dry_run": False}
        self.log.info("waiting for %d %s restore(s) in the triggerer", len(pending), tier)
        self.defer(
            trigger=S3RestoreTrigger(
                bucket=plan["bucket"],
                keys=pending,
                aws_conn_id=cfg.connections.aws,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(hours=self.timeout_hours),
        )
        return {}  # not reached: defer raises

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
        from backup_pipelines.core.s3 import S3ArchiveHook
        from backup_pipelines.kafka.archive import KafkaArchiveHook, replay_plan

        cfg = load_config()
        plan = dict(self.plan)
        kafka = KafkaArchiveHook(
            kafka_conn_id=cfg.connections.kafka, group_id=cfg.kafka_archive.consumer_group_id
        )
        with tempfile.TemporaryDirectory(prefix="kafka-replay-") as spool:
            result = replay_plan(kafka, S3ArchiveHook(aws_conn_id=cfg.connections.aws), plan, Path(spool))
        self.log.info("replay result: %s", result)
        return result
