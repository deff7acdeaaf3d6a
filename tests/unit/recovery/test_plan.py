"""The catch-up plan: which offsets come from the archives, which from the topic, and the holes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, OffsetRange
from backup_pipelines.recovery.plan import (
    CatchUpPlan,
    archived_ranges,
    partition_plan,
    recorded_offsets,
    uncovered,
)

AT = datetime(2026, 11, 27, 11, 3, tzinfo=UTC)


def _archive(rp: str, *ranges: tuple[int, int, int]) -> Manifest:
    return Manifest(
        kind=DatasetKind.KAFKA_ARCHIVE,
        dataset="events",
        recovery_point_id=rp,
        captured_at=AT,
        location="s3://archive/kafka/events/",
        storage_class="GLACIER",
        offsets=[
            OffsetRange(topic="events", partition=p, start_offset=a, end_offset=b) for p, a, b in ranges
        ],
    )


@pytest.mark.parametrize(
    ("ranges", "start", "end", "holes"),
    [
        ([(0, 100), (100, 250)], 40, 200, []),
        ([(0, 100), (120, 250)], 40, 200, [(100, 120)]),
        ([(0, 100)], 40, 200, [(100, 200)]),
        ([], 40, 200, [(40, 200)]),
        ([(50, 60), (60, 70)], 40, 80, [(40, 50), (70, 80)]),
        ([(0, 10), (5, 30), (30, 31)], 0, 31, []),  # overlapping archives still cover
    ],
)
def test_uncovered_names_every_offset_no_archive_holds(
    ranges: list[tuple[int, int]], start: int, end: int, holes: list[tuple[int, int]]
) -> None:
    assert uncovered(ranges, start, end) == holes


def test_a_partition_whose_recorded_offsets_kafka_still_holds_needs_no_archive() -> None:
    plan = partition_plan("events", 0, recorded={"g": 500}, low=120, end=900, upper={"g": 900}, archived=[])
    assert plan.archive_range is None and plan.topic_range == (500, 900) and plan.holes == []


def test_retention_past_the_recorded_offset_reads_the_archive_up_to_the_low_watermark() -> None:
    archived = archived_ranges(
        [_archive("w1", (0, 0, 300)), _archive("w2", (0, 300, 700), (1, 0, 9))], "events"
    )
    assert archived == {0: [(0, 300), (300, 700)], 1: [(0, 9)]}
    plan = partition_plan(
        "events", 0, recorded={"g": 250}, low=640, end=1000, upper={"g": 1000}, archived=archived[0]
    )
    assert plan.archive_range == (250, 640) and plan.topic_range == (640, 1000) and plan.holes == []


def test_a_gap_between_the_newest_archive_and_the_low_watermark_is_a_hole_named_in_the_plan() -> None:
    plan = partition_plan(
        "events", 2, recorded={"g": 250}, low=800, end=1000, upper={"g": 1000}, archived=[(0, 700)]
    )
    assert plan.holes == [(700, 800)]
    assert plan.describe_holes() == [
        "events[2]: offsets 700-799 deleted by retention and in no verified archive"
    ]


def test_replay_topic_mode_stops_at_what_the_running_ingestion_committed_and_groups_share_a_range() -> None:
    plan = partition_plan(
        "events",
        0,
        recorded={"a": 300, "b": 340},
        low=0,
        end=1000,
        upper={"a": 700, "b": 650},
        archived=[],
    )
    assert plan.topic_range == (300, 700)  # the slowest group's start, the furthest group's stop


def test_the_plan_summary_shows_window_ranges_and_holes() -> None:
    part = partition_plan("events", 0, recorded={"g": 5}, low=10, end=20, upper={"g": 20}, archived=[])
    plan = CatchUpPlan(
        dataset="analytics",
        database="analytics",
        recovery_point_id="20261127T1100Z",
        captured_at=AT,
        offsets_read_at=AT,
        planned_at=datetime(2026, 11, 27, 13, tzinfo=UTC),
        mode="reset_group",
        groups=["g"],
        replay_topic_suffix=".replay",
        partitions=[part],
        dry_run=True,
    )
    summary: dict[str, Any] = plan.summary()
    assert summary["window"] == {"from": "2026-11-27T11:03:00+00:00", "to": "2026-11-27T13:00:00+00:00"}
    assert summary["holes"] == ["events[0]: offsets 5-9 deleted by retention and in no verified archive"]
    assert summary["partitions"]["events[0]"]["archive"] == [5, 10]
    assert summary["partitions"]["events[0]"]["topic"] == [10, 20]


def test_recorded_offsets_read_json_keys_as_partitions_and_none_without_a_record() -> None:
    point = _archive("p")
    assert recorded_offsets(point) is None
    point = point.model_copy(update={"details": {"ingest_offsets": {"g": {"events": {"0": 7, "11": 3}}}}})
    assert recorded_offsets(point) == {"g": {"events": {0: 7, 11: 3}}}
