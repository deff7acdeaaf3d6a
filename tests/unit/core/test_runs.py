"""A manual run with no data interval derives its keys from when the run was due, not the wall
clock, so its snapshot and its verification (separate tasks, maybe retried) agree on the slot."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from backup_pipelines.core import clock
from backup_pipelines.core.runs import hourly_slot as slot_of

DUE = datetime(2026, 11, 23, 14, 59, 58, tzinfo=UTC)


def _manual_context() -> dict:
    return {"data_interval_start": None, "data_interval_end": None, "dag_run": SimpleNamespace(run_after=DUE)}


def test_manual_snapshot_slot_is_the_hour_the_run_was_due(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 11, 23, 14, 59, 59, tzinfo=UTC))
    first = slot_of(_manual_context())
    # The verification task starts after the hour turned: it must still find the same slot.
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 11, 23, 15, 0, 3, tzinfo=UTC))
    second = slot_of(_manual_context())
    assert first == second == (None, datetime(2026, 11, 23, 14, 0, tzinfo=UTC))


def test_scheduled_slot_is_the_data_interval() -> None:
    start, end = datetime(2026, 11, 23, 13, tzinfo=UTC), datetime(2026, 11, 23, 14, tzinfo=UTC)
    context = {
        "data_interval_start": start,
        "data_interval_end": end,
        "dag_run": SimpleNamespace(run_after=DUE),
    }
    assert slot_of(context) == (start, end)
