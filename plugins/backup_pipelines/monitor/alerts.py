"""Deadline alerts (SLA-miss emails) and failure emails, attached to every DAG by ``dagkit``.

Airflow 3 removed task SLAs; ``DeadlineAlert`` replaced them. The scheduler stores one deadline
per DAG run when the run is created (or queued), checks it every loop, and when it passes before the
run has finished hands our async callback to the triggerer, which sends the ``[SLA MISS]`` email.

Config (``deadlines.<dag_id>``):

- ``reference: data_interval_end`` -- the run must finish within ``after`` of its data interval's
  end. Airflow has no data-interval-end reference, so this is the logical date (the interval's
  start, with ``CronDataIntervalTimetable``) plus the *longest* interval of the DAG's cron plus
  ``after``. Exact for evenly spaced schedules (every 15 min, hourly, daily, weekly); for uneven ones
  (monthly) the alert is late by the difference (up to 3 days in February), never early.
- ``reference: queued_at`` -- within ``after`` of the moment the run was queued (manual DAGs).

Backfills do not page: a deadline of a run whose ``run_type`` is ``backfill`` is suppressed in the
callback (logged, no email), because a backfill of last month is late by design. A manual run whose
deadline had already passed when it was queued (a re-run of an old interval) is suppressed too.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from backup_pipelines.core import notify
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, human_duration
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.monitor import rpo

log = logging.getLogger(__name__)

SLA_MISS_PREFIX = "[SLA MISS]"
FAILED_PREFIX = "[FAILED]"
# Seconds the SLA-miss callback waits for the catalog before sending the email without ages.
CATALOG_TIMEOUT_SECONDS = 30.0

# Which catalog kinds a DAG protects (named in its SLA-miss email). DAGs not listed here (the drill,
# the monitor, anything new) name every configured dataset.
DAG_DATASET_KINDS: dict[str, tuple[str, ...]] = {
    "clickhouse_hourly_snapshot": ("clickhouse_snapshot",),
    "emr_daily_output_archive": ("emr_output",),
    "kafka_weekly_glacier_archive": ("kafka_archive",),
    "monthly_deep_archive_export": ("deep_archive_export",),
}


def configured_schedules(cfg: BackupConfig) -> dict[str, str]:
    """Each scheduled DAG id and the cron it runs on, from the config sections that own them."""
    return {
        "clickhouse_hourly_snapshot": cfg.clickhouse_snapshots.schedule,
        "emr_daily_output_archive": cfg.emr_archive.schedule,
        "kafka_weekly_glacier_archive": cfg.kafka_archive.schedule,
        "monthly_deep_archive_export": cfg.deep_archive_exports.schedule,
        "dr_drill": cfg.dr_drill.schedule,
        "backup_rpo_monitor": cfg.rpo_monitor.schedule,
    }


@lru_cache(maxsize=64)
def longest_interval(schedule: str) -> timedelta:
    """The longest gap between consecutive ticks of a cron (over 64 ticks from a fixed date).

    Deterministic (no wall clock) and cheap enough for DAG parsing; 64 ticks of a monthly cron
    span five years, so they include a 31-day month.
    """
    from croniter import croniter

    cron = croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    ticks = [cron.get_next(datetime) for _ in range(65)]
    return max(b - a for a, b in itertools.pairwise(ticks))


# -- failure emails --------------------------------------------------------------------------------

_FAILURE_SUBJECT = (
    FAILED_PREFIX + " {{ ti.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }}, try {{ ti.try_number }})"
)
_FAILURE_BODY = (
    "<p>Task <b>{{ ti.task_id }}</b> of DAG <b>{{ ti.dag_id }}</b> failed.</p>"
    "<table>"
    "<tr><th align='left'>Run</th><td>{{ run_id | e }}</td></tr>"
    "<tr><th align='left'>Logical date</th><td>{{ logical_date or 'none (manual run)' }}</td></tr>"
    "<tr><th align='left'>Try</th><td>{{ ti.try_number }}</td></tr>"
    "<tr><th align='left'>Error</th><td>{{ exception | string | truncate(2000) | e }}</td></tr>"
    "<tr><th align='left'>Log</th><td><a href='{{ ti.log_url }}'>{{ ti.log_url }}</a></td></tr>"
    "</table>"
)


def failure_callbacks(cfg: BackupConfig) -> list[Any]:
    """``on_failure_callback`` for every task: an email with the error and the log link."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [
        SmtpNotifier(
            to=list(cfg.alerts.recipients),
            from_email=cfg.alerts.from_email,
            smtp_conn_id=cfg.connections.smtp,
            subject=_FAILURE_SUBJECT,
            html_content=_FAILURE_BODY,
        )
    ]


# -- deadline alerts -------------------------------------------------------------------------------


def deadline_alerts(cfg: BackupConfig, dag_id: str, *, schedule: str | None = None) -> list[Any]:
    """``DeadlineAlert``s for a DAG from ``cfg.deadlines`` (none when the DAG has no entry).

    ``schedule`` is the DAG's cron; when not given it is looked up in the config section that owns
    the DAG. A ``data_interval_end`` deadline on a DAG without a schedule is a config error.
    """
    deadline = cfg.deadlines.get(dag_id)
    if deadline is None:
        return []
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    schedule = schedule or configured_schedules(cfg).get(dag_id)
    if deadline.reference == "data_interval_end":
        if not schedule:
            raise ConfigError(
                f"deadlines.{dag_id}.reference: data_interval_end needs a scheduled DAG, and {dag_id} "
                "has no schedule; use queued_at"
            )
        reference = DeadlineReference.DAGRUN_LOGICAL_DATE
        interval = longest_interval(schedule) + deadline.after
    else:
        reference = DeadlineReference.DAGRUN_QUEUED_AT
        interval = deadline.after
    callback = AsyncCallback(sla_miss_callback, kwargs=sla_callback_kwargs(cfg, dag_id))
    # The UI shows "Must complete within <interval> of <reference> (<name>)": the name states the
    # promise as configured, and how the UI's own figure relates to it.
    name = "promise: " + promise(deadline.reference, deadline.after.total_seconds())
    if deadline.reference == "data_interval_end":
        exact = "exact" if _even(schedule) else "late by up to the gap in shorter intervals"
        name += f"; counted as {human_duration(interval.total_seconds())} from the logical date ({exact})"
    return [DeadlineAlert(reference=reference, interval=interval, callback=callback, name=name)]


def promise(reference: str, after_seconds: float) -> str:
    """The configured deadline in words: ``45m after the data interval's end``."""
    anchor = "the data interval's end" if reference == "data_interval_end" else "the run was queued"
    return f"{human_duration(after_seconds)} after {anchor}"


@lru_cache(maxsize=64)
def _even(schedule: str) -> bool:
    """Every interval of the cron is as long as the longest (so the UI's figure is exact)."""
    from croniter import croniter

    cron = croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    ticks = [cron.get_next(datetime) for _ in range(65)]
    return len({b - a for a, b in itertools.pairwise(ticks)}) == 1


def sla_callback_kwargs(cfg: BackupConfig, dag_id: str) -> dict[str, Any]:
    """Plain JSON values the callback needs; it runs in the triggerer, which may not see the config."""
    deadline = cfg.deadlines[dag_id]
    kinds = DAG_DATASET_KINDS.get(dag_id)
    return {
        "dag_id": dag_id,
        "reference": deadline.reference,
        "after_seconds": deadline.after.total_seconds(),
        "recipients": list(cfg.alerts.recipients),
        "from_email": cfg.alerts.from_email,
        "smtp_conn_id": cfg.connections.smtp,
        "aws_conn_id": cfg.connections.aws,
        "bucket": cfg.storage.backup_bucket,
        "catalog_prefix": cfg.storage.catalog_prefix,
        "datasets": [t.to_list() for t in rpo.targets(cfg, kinds=kinds)],
    }


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value))


def suppression_reason(dag_run: dict[str, Any], deadline_time: datetime | None) -> str | None:
    """Why a missed deadline must not send an email, or None when it must."""
    run_type = str(dag_run.get("run_type") or "")
    if run_type == "backfill":
        return "the run is a backfill; backfills of past intervals are late by design"
    queued_at = _as_datetime(dag_run.get("queued_at"))
    if run_type == "manual" and deadline_time and queued_at and deadline_time < queued_at:
        return (
            f"the manual run was queued at {queued_at:%Y-%m-%d %H:%M:%S} UTC, after its deadline "
            f"{deadline_time:%Y-%m-%d %H:%M:%S} UTC (a re-run of an old interval)"
        )
    return None


def sla_miss_email(
    *,
    dag_id: str,
    dag_run: dict[str, Any],
    deadline_time: datetime | None,
    reference: str,
    after_seconds: float,
    ages: list[Any],
    catalog_error: str | None = None,
) -> notify.Message:
    """The SLA-miss email: the DAG, the run, the deadline, and the datasets with their ages."""
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "unknown run")
    deadline_text = f"{deadline_time:%Y-%m-%d %H:%M:%S} UTC" if deadline_time else "unknown"
    subject = f"{SLA_MISS_PREFIX} {dag_id} run {run_id} missed its deadline {deadline_text}"
    rows = [
        ("DAG", dag_id),
        ("Run", run_id),
        ("Run type", str(dag_run.get("run_type") or "-")),
        ("Run state at the deadline", str(dag_run.get("state") or "-")),
        ("Logical date", str(dag_run.get("logical_date") or "none")),
        ("Data interval", f"{dag_run.get('data_interval_start')} to {dag_run.get('data_interval_end')}"),
        ("Queued at", str(dag_run.get("queued_at") or "-")),
        ("Deadline", f"{deadline_text} (promise: {promise(reference, after_seconds)})"),
    ]
    body = (
        notify.Body()
        .para(f"DAG {dag_id} run {run_id} had not finished by its deadline.")
        .table(rows)
        .heading("Datasets and their newest verified recovery points")
    )
    if catalog_error:
        body.para(f"The catalog could not be read: {catalog_error}")
    lines = [(a.target.key, a.describe().split(": ", 1)[1]) for a in ages]
    if lines:
        body.table(lines)
    else:
        body.para("No dataset is configured for this DAG.")
    return notify.Message.of(subject, body)


async def _ages(kwargs: dict[str, Any]) -> tuple[list[Any], str | None]:
    items = [rpo.Target.from_list(d) for d in kwargs.get("datasets") or []]
    if not items:
        return [], None

    def _measure() -> list[Any]:
        catalog = Catalog.open(
            aws_conn_id=kwargs["aws_conn_id"], bucket=kwargs["bucket"], prefix=kwargs["catalog_prefix"]
        )
        return rpo.measure_all(catalog, items)

    try:
        # boto3 is blocking: keep it off the triggerer's event loop, and never let it hold the email.
        return await asyncio.wait_for(asyncio.to_thread(_measure), CATALOG_TIMEOUT_SECONDS), None
    except Exception as exc:
        log.warning("SLA miss: reading the catalog failed, sending the email without ages: %s", exc)
        return [], f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def sla_miss_callback(*, context: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """Deadline callback (runs in the triggerer): send ``[SLA MISS]`` unless the run is a backfill.

    ``context`` is what the scheduler attaches on a miss: ``dag_run`` (the run as the REST API shows
    it) and ``deadline`` (id and deadline_time). The other kwargs come from ``sla_callback_kwargs``.
    """
    context = context or {}
    dag_run: dict[str, Any] = dict(context.get("dag_run") or {})
    deadline_time = _as_datetime((context.get("deadline") or {}).get("deadline_time"))
    dag_id = str(kwargs.get("dag_id") or dag_run.get("dag_id") or "unknown DAG")
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    reason = suppression_reason(dag_run, deadline_time)
    if reason:
        log.info("SLA miss of %s run %s suppressed: %s", dag_id, run_id, reason)
        return f"suppressed: {reason}"
    ages, catalog_error = await _ages(kwargs)
    message = sla_miss_email(
        dag_id=dag_id,
        dag_run=dag_run,
        deadline_time=deadline_time,
        reference=str(kwargs.get("reference") or "data_interval_end"),
        after_seconds=float(kwargs.get("after_seconds") or 0),
        ages=ages,
        catalog_error=catalog_error,
    )
    recipients = list(kwargs["recipients"])
    await notify.send_async(
        message,
        smtp_conn_id=kwargs.get("smtp_conn_id") or "smtp_default",
        from_email=kwargs.get("from_email") or "backup-pipelines@localhost",
        to=recipients,
    )
    log.info("SLA miss of %s run %s: emailed %s", dag_id, run_id, ", ".join(recipients))
    return f"sent: {message.subject}"
