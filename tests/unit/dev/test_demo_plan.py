"""The demo asks only for intervals that have ended, whatever the time of day it runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_pipelines.dev.demo import DEMO_PLAN

NOWS = [
    datetime(2026, 11, 24, 0, 2, tzinfo=UTC),  # just after midnight, before the daily 03:00 tick
    datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    datetime(2026, 12, 1, 1, 0, tzinfo=UTC),  # the 1st, before the monthly 05:00 tick
    datetime(2026, 11, 23, 4, 0, tzinfo=UTC),  # exactly on the weekly tick
]


@pytest.mark.parametrize("now", NOWS, ids=lambda n: n.isoformat())
def test_every_planned_interval_has_ended(now: datetime) -> None:
    for dag_id, plan in DEMO_PLAN:
        for run in plan(now):
            assert run.logical_date is None or run.logical_date <= now, f"{dag_id} asks for a future interval"


def test_the_plan_covers_every_dag_in_the_catalogue() -> None:
    assert {dag_id for dag_id, _ in DEMO_PLAN} == {
        "clickhouse_hourly_snapshot",
        "emr_daily_output_archive",
        "kafka_weekly_glacier_archive",
        "monthly_deep_archive_export",
        "clickhouse_restore",
        "kafka_archive_replay",
        "dr_drill",
        "dr_replication",
        "backup_rpo_monitor",
    }
