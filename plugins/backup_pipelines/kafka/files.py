"""What one archive file holds, checked against its manifest index entry (also used by the drill)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_pipelines.core.checksums import file_sha256
from backup_pipelines.kafka.parquet import Record, read_records


@dataclass
class FileVerification:
    """Result of checking one archive file against its manifest index entry."""

    key: str
    records: int
    first_offset: int | None
    last_offset: int | None
    sha256: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive_file(
    path: Path | str, entry: dict[str, Any], *, key: str | None = None
) -> FileVerification:
    """Check a local copy of an archive file against its manifest index entry.

    Checks: SHA-256 equals the index, offsets strictly increase, first/last offset and record
    count equal the index, every record belongs to the indexed partition. Never raises on a
    mismatch: the problems are listed, the caller decides.
    """
    import pyarrow.parquet as pq

    name = key or str(entry.get("key") or path)
    digest = file_sha256(path)
    table = pq.read_table(str(path), columns=["partition", "offset"])
    offsets = table.column("offset").to_pylist()
    partitions = set(table.column("partition").to_pylist())
    check = FileVerification(
        key=name,
        records=len(offsets),
        first_offset=offsets[0] if offsets else None,
        last_offset=offsets[-1] if offsets else None,
        sha256=digest,
    )
    if entry.get("sha256") and entry["sha256"] != digest:
        check.problems.append(f"SHA-256 {digest} != {entry['sha256']} in the manifest")
    if any(b <= a for a, b in itertools.pairwise(offsets)):
        check.problems.append("offsets do not strictly increase inside the file")
    for label, actual in (
        ("first_offset", check.first_offset),
        ("last_offset", check.last_offset),
        ("records", check.records),
        ("partition", next(iter(partitions)) if len(partitions) == 1 else sorted(partitions)),
    ):
        if entry.get(label) is not None and entry[label] != actual:
            check.problems.append(f"{label} {actual} != {entry[label]} in the manifest")
    return check


def iter_file_slice(
    path: Path | str,
    *,
    first_offset: int | None = None,
    last_offset: int | None = None,
    limit: int | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Iterator[Record]:
    """Records of a file within an offset range and/or ``[start_ms, end_ms)``, up to ``limit``."""
    count = 0
    for record in read_records(path):
        if first_offset is not None and record.offset < first_offset:
            continue
        if last_offset is not None and record.offset > last_offset:
            return
        if start_ms is not None and (record.timestamp_ms is None or record.timestamp_ms < start_ms):
            continue
        if end_ms is not None and (record.timestamp_ms is None or record.timestamp_ms >= end_ms):
            continue
        if limit is not None and count >= limit:
            return
        count += 1
        yield record


def compare_records(expected: Sequence[Record], actual: Sequence[Record]) -> list[str]:
    """Differences between archived records and records read back after a replay (keys, values,
    headers, timestamps, in order); offsets and topic are expected to differ."""
    problems: list[str] = []
    if len(expected) != len(actual):
        problems.append(f"{len(actual)} records read back, {len(expected)} archived")
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        # A record archived without a timestamp (type 0) is stamped by the broker on replay.
        fields = ("key", "value") if want.timestamp_type == 0 else ("key", "value", "timestamp_ms")
        for name in fields:
            if getattr(want, name) != getattr(got, name):
                problems.append(f"record {i} (archived offset {want.offset}): {name} differs")
        if (want.headers or []) != (got.headers or []):
            problems.append(f"record {i} (archived offset {want.offset}): headers differ")
        if len(problems) >= 20:
            problems.append("... (stopped after 20 differences)")
            break
    return problems
