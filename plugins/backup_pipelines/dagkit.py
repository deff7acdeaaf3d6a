"""One place that turns the config into DAG arguments, so every DAG gets the same house rules.

Owner, retries, tags, the ``CronDataIntervalTimetable`` (keys come from the data interval, so
backfills are safe), failure emails and SLA deadlines all come from here; DAG files stay thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pendulum

from backup_pipelines.core.config import BackupConfig, load_config
from backup_pipelines.monitor import alerts

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


def node_id(prefix: str, name: str) -> str:
    """A task or task group id for a configured name: ``<prefix>_<name>``, ``.`` and ``-`` as ``_``."""
    return f"{prefix}_{name}".replace(".", "_").replace("-", "_")


def dag_kwargs(
    dag_id: str,
    *,
    schedule: str | None,
    doc_md: str,
    tags: Sequence[str] = (),
    params: dict[str, Any] | None = None,
    max_active_runs: int = 1,
    cfg: BackupConfig | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``DAG(...)``; ``schedule=None`` makes a manual (UI-triggered) DAG."""
    from airflow.sdk import CronDataIntervalTimetable

    cfg = cfg or load_config()
    default_args: dict[str, Any] = {
        "owner": cfg.defaults.owner,
        "retries": cfg.defaults.retries,
        "retry_delay": cfg.defaults.retry_delay,
        "on_failure_callback": alerts.failure_callbacks(cfg),
    }
    kwargs: dict[str, Any] = {
        "dag_id": dag_id,
        "schedule": CronDataIntervalTimetable(schedule, timezone="UTC") if schedule else None,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": max_active_runs,
        "default_args": default_args,
        "tags": sorted({*cfg.defaults.tags, *tags}),
        "doc_md": doc_md,
        "params": params or {},
        "render_template_as_native_obj": False,
    }
    deadlines = alerts.deadline_alerts(cfg, dag_id, schedule=schedule)
    if deadlines:
        kwargs["deadline"] = deadlines
    return kwargs
