"""Gap-free, overlap-free coverage: every offset of a window is archived exactly once, or proven to
hold no record, and each window starts where the previous one ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_contiguity(
    ranges: Sequence[dict[str, Any]],
    entries: Sequence[dict[str, Any]],
    previous_end: dict[tuple[str, int], int],
) -> list[str]:
    """Problems that break gap-free, overlap-free coverage; empty when the archive is sound.

    ``ranges`` are the partitions' ``[start_offset, end_offset)`` with the ``records`` the read
    counted and its ``no_record`` account (``offsets``: how many it proved hold no readable
    record),
    ``entries`` the files' index entries, ``previous_end`` the end offset of each partition in
    the previous archive. Every offset of a range must be in exactly one file or be one of the
    offsets without a record.
    """
    by_partition: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for entry in entries:
        by_partition.setdefault((entry["topic"], entry["partition"]), []).append(entry)
    problems: list[str] = []
    for rng in ranges:
        tp = (rng["topic"], rng["partition"])
        problems += partition_problems(rng, by_partition.get(tp, []), previous_end.get(tp))
    return problems


def partition_problems(rng: dict[str, Any], entries: Sequence[dict[str, Any]], prev: int | None) -> list[str]:
    """The coverage problems of one partition's range, its files, and the previous archive's end."""
    label = f"{rng['topic']}[{rng['partition']}]"
    start, end = rng["start_offset"], rng["end_offset"]
    without_record = int((rng.get("no_record") or {}).get("offsets", 0))
    problems: list[str] = []
    if end < start:
        problems.append(f"{label}: end offset {end} before start offset {start}")
    if prev is not None and start != prev:
        kind = "gap" if start > prev else "overlap"
        problems.append(
            f"{label}: {kind}: the previous archive ends at offset {prev}, this one starts at {start}"
        )
    cursor = start
    count = 0
    holes: list[tuple[int, int]] = []
    for entry in sorted(entries, key=lambda e: e["first_offset"]):
        span = entry["last_offset"] - entry["first_offset"] + 1
        if not 0 < entry["records"] <= span:
            problems.append(
                f"{label}: file {entry['key']} claims {entry['records']} records for offsets "
                f"{entry['first_offset']}-{entry['last_offset']}"
            )
        if entry["first_offset"] < cursor:
            problems.append(f"{label}: file {entry['key']} overlaps offsets before {cursor}")
        elif entry["first_offset"] > cursor:
            holes.append((cursor, entry["first_offset"]))
        if entry["last_offset"] >= end:
            problems.append(f"{label}: file {entry['key']} holds offsets at or after the end {end}")
        cursor = entry["last_offset"] + 1
        count += entry["records"]
    if cursor < end:
        holes.append((cursor, end))
    if count != rng.get("records", count):
        problems.append(f"{label}: files hold {count} records, the read counted {rng['records']}")
    if count + without_record != end - start:
        problems += [f"{label}: offsets {a}-{b - 1} are in no file" for a, b in holes]
        recorded = f" and {without_record} without a record" if without_record else ""
        problems.append(
            f"{label}: {end - start} offsets in [{start}, {end}) but {count} records archived{recorded}"
        )
    return problems
