"""Coverage that producer clocks cannot break: three consecutive weekly runs over the partitions of
one topic, with records stamped out of order, far in the future, far in the past and not at all.
Every offset below each run's cut is archived exactly once, nothing written before a run is held
back to a later one, the manifests count what was stamped outside its window, and the replay
finds each record by its own timestamp (or, without one, by offset)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

W0 = datetime(2026, 4, 6, 4, tzinfo=UTC)
WEEK = timedelta(days=7)
PARTITIONS = 3
FAR_FUTURE = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp() * 1000)  # a producer clock years ahead
ABSURD = 2**62  # a clock gone wrong: beyond what a datetime can hold
FAR_PAST = 1_000  # 1970
NONE = -1  # Kafka's "no timestamp"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _week_rows(week: int, *, idle: set[int]) -> list[tuple[int, int]]:
    """(partition, timestamp) of one week: in-window records in order and out of order, and the
    skewed kinds in between; a far-future record first, so the old rule (stop at the first record
    stamped at or after the window end) would have held the partition back at it."""
    start = _ms(W0 + week * WEEK)
    hour = 3_600_000
    rows = []
    for partition in range(PARTITIONS):
        if partition in idle:
            continue
        stamps = [start + hour, FAR_FUTURE, start + 5 * hour, start + 2 * hour, FAR_PAST, NONE, ABSURD]
        stamps += [start + 50 * hour - k * hour for k in range(6)]  # out of order, descending
        stamps += [start + 170 * hour, NONE, FAR_FUTURE + partition]  # after the window, last
        rows += [(partition, ts) for ts in stamps]
    return rows


def _expected_outside(rows: list[tuple[int, int]], week: int) -> dict[str, int]:
    start, end = _ms(W0 + week * WEEK), _ms(W0 + (week + 1) * WEEK)
    return {
        "before": sum(1 for _, ts in rows if 0 <= ts < start),
        "after": sum(1 for _, ts in rows if ts >= end),
        "none": sum(1 for _, ts in rows if ts < 0),
    }


def test_skewed_timestamps_neither_hold_a_partition_back_nor_get_lost(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any], tmp_path: Any
) -> None:
    from support.kafka import archived_records, create_topic, produce_stamped, run_window, weekly_archive

    from backup_pipelines.kafka.files import iter_file_slice
    from backup_pipelines.kafka.replay import download_archive_file, select_replay_files

    topic = f"it-skew-{uuid.uuid4().hex[:8]}"
    bootstrap = embedded_stack.kafka_bootstrap
    create_topic(bootstrap, topic, PARTITIONS)
    weekly = weekly_archive(write_config, example_config, topic)
    bucket = weekly.cfg.storage.archive_bucket
    written: dict[int, int] = dict.fromkeys(range(PARTITIONS), 0)  # records written per partition
    archived: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    manifests = []
    for week in range(3):
        rows = _week_rows(week, idle={2} if week == 2 else set())
        produce_stamped(bootstrap, topic, rows, value=b"w%d" % week)
        for partition, _ in rows:
            written[partition] += 1
        results, (manifest,) = run_window(weekly, W0 + week * WEEK, W0 + (week + 1) * WEEK)
        manifests.append(manifest)
        for result in results:
            # Nothing written before the run waits for a later one, whatever its timestamp.
            assert result.end_offset == written[result.partition], f"week {week} {result.partition}"
            assert result.stopped_by == "cut"
        keys = [o.key for o in manifest.objects]
        for record in archived_records(s3, bucket, keys, tmp_path):
            archived[record.partition].append(record.offset)
        outside = manifest.details["stamped_outside_window"]
        assert {k: outside[k] for k in ("before", "after", "none")} == _expected_outside(rows, week)
        assert manifest.details["cut_observed_at"] is not None

    for partition in range(PARTITIONS):
        offsets = archived[partition]
        assert sorted(offsets) == list(range(written[partition])), f"partition {partition}: gap or overlap"
        assert len(set(offsets)) == len(offsets), f"partition {partition}: archived twice"
    for earlier, later in itertools.pairwise(manifests):
        ends = {o.partition: o.end_offset for o in earlier.offsets}
        assert {o.partition: o.start_offset for o in later.offsets} == ends

    # The replay finds a skewed record by its own timestamp, and one without by its offset.
    points = weekly.catalog.list_points("kafka_archive", topic).points
    found = []
    for start_ms, end_ms in ((FAR_FUTURE + 1, FAR_FUTURE + 2), (FAR_PAST, FAR_PAST + 1)):
        for entry in select_replay_files(points, partitions=[1], start_ms=start_ms, end_ms=end_ms):
            local = download_archive_file(weekly.s3, bucket, entry, tmp_path)
            found += [r.timestamp_ms for r in iter_file_slice(local, start_ms=start_ms, end_ms=end_ms)]
    assert found == [FAR_FUTURE + 1] * 3 + [FAR_PAST] * 3, "one of each per week in partition 1"
    no_stamp = [o for o in points[0].objects if o.partition == 0]
    records = archived_records(s3, bucket, [o.key for o in no_stamp], tmp_path)
    assert [r.offset for r in records if r.timestamp_ms == NONE] == [5, 14], "week 1, by offset"
