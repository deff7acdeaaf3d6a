"""How an archive's coverage is judged: gaps, overlaps, holes, offsets without a record."""

from __future__ import annotations

from typing import Any

from backup_pipelines.kafka.coverage import check_contiguity


def _range(start: int, end: int) -> dict[str, Any]:
    return {
        "topic": "events",
        "partition": 0,
        "start_offset": start,
        "end_offset": end,
        "records": end - start,
    }


def _file(first: int, last: int) -> dict[str, Any]:
    key = f"kafka/events/partition=0/{first}-{last}.parquet"
    return {
        "topic": "events",
        "partition": 0,
        "first_offset": first,
        "last_offset": last,
        "records": last - first + 1,
        "key": key,
    }


def test_contiguous_archive_has_no_problem() -> None:
    problems = check_contiguity([_range(100, 200)], [_file(100, 149), _file(150, 199)], {("events", 0): 100})
    assert problems == []


def test_gap_and_overlap_with_the_previous_archive_are_named() -> None:
    gap = check_contiguity([_range(105, 200)], [_file(105, 199)], {("events", 0): 100})
    assert gap == ["events[0]: gap: the previous archive ends at offset 100, this one starts at 105"]
    overlap = check_contiguity([_range(95, 200)], [_file(95, 199)], {("events", 0): 100})
    assert overlap[0].startswith("events[0]: overlap")


def test_a_hole_between_files_is_named() -> None:
    problems = check_contiguity([_range(100, 200)], [_file(100, 139), _file(150, 199)], {})
    assert "events[0]: offsets 140-149 are in no file" in problems


def test_offsets_without_a_record_count_as_covered() -> None:
    # Files 100-139 (39 records: one offset inside it is a marker) and 150-199; 140-149 aborted.
    inside = {**_file(100, 139), "records": 39}
    rng = {**_range(100, 200), "records": 89, "no_record": {"offsets": 11}}
    assert check_contiguity([rng], [inside, _file(150, 199)], {("events", 0): 100}) == []
    # Fewer offsets without a record than the files leave out: the holes are named.
    short = {**rng, "no_record": {"offsets": 6}}
    problems = check_contiguity([short], [inside, _file(150, 199)], {})
    assert "events[0]: offsets 140-149 are in no file" in problems
    assert "events[0]: 100 offsets in [100, 200) but 89 records archived and 6 without a record" in problems


def test_a_file_claiming_more_records_than_its_offsets_is_named() -> None:
    bloated = {**_file(100, 149), "records": 60}
    rng = {**_range(100, 200), "records": 110}
    problems = check_contiguity([rng], [bloated, _file(160, 199)], {})
    assert f"events[0]: file {bloated['key']} claims 60 records for offsets 100-149" in problems
