"""Where a partition read stops, and what counts as lost data: fake messages reach every path."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from support.kafka import FakeMessage

from backup_pipelines.core.errors import BackupPipelinesError, OffsetGapError
from backup_pipelines.kafka.cursor import ReadCursor, ReadResult


def cursor(
    start: int = 10, *, skip_before: int | None = None, cut: int | None = None, low: int | None = None
) -> ReadCursor:
    """A cursor; ``low`` is what the broker answers for the low watermark (None: never asked)."""
    result = ReadResult(topic="events", partition=2, requested_start=start, start_offset=start)
    probe = None if low is None else (lambda: low)
    return ReadCursor(result, start, skip_before, cut, None, low_watermark=probe)


def accept(cur: ReadCursor, message: FakeMessage) -> bool:
    return cur.accept(message.offset(), *message.timestamp())


def test_the_read_stops_at_the_cut_whatever_the_timestamps_say() -> None:
    """A record stamped far in the future no longer ends the window: the cut is an offset."""
    cur = cursor(10, cut=14)
    far_future, far_past = 2**62, -(2**40)
    assert accept(cur, FakeMessage(10, 4_999)) and accept(cur, FakeMessage(11, far_future))
    assert accept(cur, FakeMessage(12, far_past)) and not cur.done
    assert accept(cur, FakeMessage(13, None))
    assert cur.done and cur.result.end_offset == 14 and cur.result.stopped_by == "cut"
    assert cur.result.records == 4
    assert not accept(cur, FakeMessage(14, 5_000)), "nothing at or after the cut"


def test_a_record_past_the_cut_closes_the_range_with_the_skipped_offsets_recorded() -> None:
    cur = cursor(10, cut=14, low=0)
    assert accept(cur, FakeMessage(10, 1))
    assert not accept(cur, FakeMessage(16, 1))  # 11-13 held no record (markers)
    assert cur.result.end_offset == 14 and cur.result.no_record() == {
        "offsets": 3,
        "runs": 1,
        "first_runs": [[11, 14]],
    }


def test_the_end_of_the_partition_before_the_cut_ends_the_read_there() -> None:
    """An open transaction keeps a read_committed reader below the cut seen by the plan."""
    cur = cursor(10, cut=20)
    assert accept(cur, FakeMessage(10, 1))
    cur.on_error(FakeMessage(11, error=KafkaError(KafkaError._PARTITION_EOF)))
    assert cur.result.end_offset == 11 and cur.result.stopped_by == "end_of_partition"


def test_a_cut_at_the_start_reads_nothing() -> None:
    cur = cursor(10, cut=10)
    assert cur.done and cur.result.end_offset == 10 and cur.result.stopped_by == "cut"


def test_a_batch_is_taken_whole_or_sliced_exactly_as_record_by_record() -> None:
    """``take`` decides a contiguous batch at once, and falls back to each record otherwise."""
    stamps = [(1, 5)] * 6
    whole = cursor(10, cut=100)
    assert whole.take([10, 11, 12, 13, 14, 15], stamps) == (0, 6) and whole.expected == 16
    refetched = cursor(10, cut=13)
    assert refetched.take([8, 9, 10, 11, 12, 13], stamps) == (2, 5)  # 8, 9 seen; 13 is the cut
    assert refetched.done and refetched.result.records == 3 and refetched.result.end_offset == 13
    skipping = cursor(0, skip_before=5, cut=100)
    assert skipping.take([0, 1, 2, 3], [(1, 1), (1, 4), (1, 5), (1, 2)]) == (2, 4)
    assert skipping.result.start_offset == 2 and skipping.result.skipped_before_window == 2


def test_a_missing_first_offset_is_lost_data_named_with_the_range() -> None:
    cur = cursor(10)
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 10-14 are missing"):
        accept(cur, FakeMessage(15, 1))


def test_offset_out_of_range_means_deleted_before_archived() -> None:
    cur = cursor(10)
    err = KafkaError(KafkaError.OFFSET_OUT_OF_RANGE)
    with pytest.raises(OffsetGapError, match="offsets from 10 were deleted before they were archived"):
        cur.on_error(FakeMessage(10, error=err))


def test_partition_that_ends_before_the_archive_continues_is_reported() -> None:
    cur = cursor(10)
    with pytest.raises(OffsetGapError, match="ends at offset 4, before offset 10"):
        cur.on_error(FakeMessage(4, error=KafkaError(KafkaError._PARTITION_EOF)))


def test_a_missing_head_the_broker_never_deleted_is_a_recorded_gap_not_a_loss() -> None:
    # A transaction's commit marker (or an aborted batch) at the start offset: the low watermark
    # is not past it, so no record was ever readable there.
    cur = cursor(10, low=0)
    assert accept(cur, FakeMessage(11, 1)) and accept(cur, FakeMessage(13, 2))
    cur.on_error(FakeMessage(15, error=KafkaError(KafkaError._PARTITION_EOF)))
    assert cur.result.no_record() == {"offsets": 3, "runs": 3, "first_runs": [[10, 11], [12, 13], [14, 15]]}
    assert cur.result.records == 2 and cur.result.end_offset == 15


def test_a_missing_head_past_the_low_watermark_is_a_loss() -> None:
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 10-14 are missing"):
        accept(cursor(10, low=15), FakeMessage(15, 1))
    with pytest.raises(OffsetGapError, match=r"offsets 10-14 are missing: the partition ends at 15"):
        cursor(10, low=15).on_error(FakeMessage(15, error=KafkaError(KafkaError._PARTITION_EOF)))


def test_a_skip_the_low_watermark_has_since_passed_is_a_loss_not_a_gap() -> None:
    # A broker that serves the next batch it holds after retention deleted records mid-read.
    lows = iter([40])
    result = ReadResult(topic="events", partition=2, requested_start=10, start_offset=10)
    cur = ReadCursor(result, 10, None, None, None, low_watermark=lambda: next(lows))
    assert accept(cur, FakeMessage(10, 1))
    assert accept(cur, FakeMessage(40, 2))  # 11-39 skipped: not yet proven either way
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 11-39 held no record when read"):
        cur.on_error(FakeMessage(41, error=KafkaError(KafkaError._PARTITION_EOF)))


def test_skips_are_proven_during_a_long_read_not_only_at_its_end() -> None:
    asked: list[int] = []
    lows = iter([5, 30])

    def probe() -> int:
        asked.append(1)
        return next(lows)

    now = [0.0]
    result = ReadResult(topic="events", partition=2, requested_start=10, start_offset=10)
    cur = ReadCursor(result, 10, None, None, None, low_watermark=probe, monotonic=lambda: now[0])
    assert accept(cur, FakeMessage(10, 1)) and accept(cur, FakeMessage(12, 1))  # 11 skipped
    cur.prove_if_due()
    assert not asked, "not due yet"
    now[0] += 60  # a minute of reading later
    cur.prove_if_due()
    assert len(asked) == 1, "proven while reading: low 5 is before offset 11"
    assert accept(cur, FakeMessage(40, 1))  # 13-39 skipped, and retention is now past them
    now[0] += 60
    with pytest.raises(OffsetGapError, match=r"offsets 13-39 held no record when read"):
        cur.prove_if_due()


def test_end_of_partition_closes_the_range() -> None:
    cur = cursor(10)
    assert accept(cur, FakeMessage(10, 1)) and accept(cur, FakeMessage(11, 2))
    cur.on_error(FakeMessage(12, error=KafkaError(KafkaError._PARTITION_EOF)))
    assert cur.done and cur.result.end_offset == 12 and cur.result.stopped_by == "end_of_partition"


def test_fatal_kafka_error_fails_and_transient_one_is_retried() -> None:
    cur = cursor(10)
    with pytest.raises(BackupPipelinesError, match="Kafka error"):
        cur.on_error(FakeMessage(10, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, fatal=True)))
    cur.on_error(FakeMessage(10, error=KafkaError(KafkaError._TRANSPORT, retriable=True)))
    assert not cur.done


def test_first_run_skips_records_before_the_window_start() -> None:
    # The embedded broker answers offsets_for_times with 0, so the read starts early and skips.
    cur = cursor(0, skip_before=1_000)
    assert not accept(cur, FakeMessage(0, 10))
    assert not accept(cur, FakeMessage(1, 999))
    assert accept(cur, FakeMessage(2, 1_000))
    assert cur.result.start_offset == 2 and cur.result.skipped_before_window == 2


def test_many_runs_without_a_record_are_counted_not_listed() -> None:
    cur = cursor(0, low=0)
    for offset in range(0, 2_000, 2):  # a commit marker after every record
        assert accept(cur, FakeMessage(offset, 1))
    cur.on_error(FakeMessage(2_000, error=KafkaError(KafkaError._PARTITION_EOF)))
    summary = cur.result.no_record()
    assert (summary["offsets"], summary["runs"], len(summary["first_runs"])) == (1_000, 1_000, 10)
