"""Records read back after a replay, compared with what was archived."""

from __future__ import annotations

from support.kafka import record

from backup_pipelines.kafka.files import compare_records
from backup_pipelines.kafka.parquet import Record


def test_replay_comparison_finds_changed_values_and_headers() -> None:
    archived = [record(1), record(2)]
    replayed = [record(1), Record("events.replay", 0, 7, 1, 1_000, b"k", b"changed", [("h", b"2")])]
    problems = compare_records(archived, replayed)
    assert problems == [
        "record 1 (archived offset 2): value differs",
        "record 1 (archived offset 2): headers differ",
    ]
    assert compare_records(archived, archived[:1]) == ["1 records read back, 2 archived"]


def test_records_archived_without_a_timestamp_may_get_one_on_replay() -> None:
    assert compare_records([record(1, ts=None)], [record(1, ts=123_456)]) == []
    assert compare_records([record(1, ts=5)], [record(1, ts=6)]) == [
        "record 0 (archived offset 1): timestamp_ms differs"
    ]
