"""What a task needs to know about its run: its data interval, or when a manual run was due.

Backfill-safe code derives keys from the run's data interval, never from the wall clock; a manual
run without one uses ``run_after``, the same for every task and retry of that run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backup_pipelines.core import clock


def run_after(context: Any) -> datetime:
    """When the run was due: the stable "now" of a run with no data interval (a manual trigger).

    Every task and every retry of one run sees the same value, unlike the wall clock, so the keys a
    manual run derives from it agree between its snapshot and its verification.
    """
    value = getattr(context.get("dag_run"), "run_after", None)
    return value if isinstance(value, datetime) else clock.utcnow()


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_slot(context: Any) -> tuple[datetime | None, datetime]:
    """(interval start, interval end) of the run; a manual run without one gets the hour it was due."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if end is None:
        return None, hour_floor(run_after(context))
    return start, end


def run_id(context: Any) -> str:
    return str(context["dag_run"].run_id)
