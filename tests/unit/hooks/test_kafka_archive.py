"""KafkaArchiveHook's decisions without a broker: where a read stops, what counts as lost data, and
how an archive's coverage and a replay are judged. Fake messages reach the error paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError

from backup_pipelines.core.errors import BackupPipelinesError, OffsetGapError
from backup_pipelines.kafka.archive import (
    KafkaArchiveHook,
    ReadResult,
    _Cursor,
    compare_records,
    object_key,
    recovery_point_id,
)
from backup_pipelines.kafka.parquet import Record


class FakeMessage:
    def __init__(self, offset: int, ts: int | None = None, error: KafkaError | None = None) -> None:
        self._offset, self._ts, self._error = offset, ts, error

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._ts is None else (1, self._ts)

    def error(self) -> KafkaError | None:
        return self._error


def cursor(
    start: int = 10, *, skip_before: int | None = None, end: int | None = None, low: int | None = None
) -> _Cursor:
    """A cursor; ``low`` is what the broker answers for the low watermark (None: never asked)."""
    result = ReadResult(topic="events", partition=2, requested_start=start, start_offset=start)
    probe = None if low is None else (lambda: low)
    return _Cursor(result, start, skip_before, end, None, low_watermark=probe)


def _manifest(**fields: Any) -> Any:
    """A kafka_archive manifest of topic ``events`` for the window ending 2026-11-16 04:00."""
    from backup_pipelines.core.catalog import Manifest

    return Manifest(
        kind="kafka_archive",
        dataset="events",
        recovery_point_id="20261116T040000Z",
        captured_at=datetime(2026, 11, 16, 4, tzinfo=UTC),
        location="s3://analytics-archive/kafka/events/",
        storage_class="GLACIER",
        **fields,
    )


def record(offset: int, *, ts: int | None = 1_000, value: bytes = b"v") -> Record:
    return Record("events", 0, offset, 0 if ts is None else 1, ts, b"k", value, [("h", b"1")])


def test_keys_and_ids_are_deterministic() -> None:
    assert recovery_point_id(datetime(2026, 11, 16, 4, tzinfo=UTC)) == "20261116T040000Z"
    assert object_key("kafka/", "events", 3, 100, 199) == "kafka/events/partition=3/100-199.parquet"


def test_read_stops_at_the_first_record_at_or_after_the_window_end() -> None:
    cur = cursor(10, end=5_000)
    assert cur.accept(FakeMessage(10, 4_999))
    assert not cur.accept(FakeMessage(11, 5_000))
    assert cur.done and cur.result.end_offset == 11 and cur.result.stopped_by == "window_end"
    assert cur.result.records == 1


def test_a_missing_first_offset_is_lost_data_named_with_the_range() -> None:
    cur = cursor(10)
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 10-14 are missing"):
        cur.accept(FakeMessage(15, 1))


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
    assert cur.accept(FakeMessage(11, 1)) and cur.accept(FakeMessage(13, 2))
    cur.on_error(FakeMessage(15, error=KafkaError(KafkaError._PARTITION_EOF)))
    assert cur.result.no_record() == {"offsets": 3, "runs": 3, "first_runs": [[10, 11], [12, 13], [14, 15]]}
    assert cur.result.records == 2 and cur.result.end_offset == 15


def test_a_missing_head_past_the_low_watermark_is_a_loss() -> None:
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 10-14 are missing"):
        cursor(10, low=15).accept(FakeMessage(15, 1))
    with pytest.raises(OffsetGapError, match=r"offsets 10-14 are missing: the partition ends at 15"):
        cursor(10, low=15).on_error(FakeMessage(15, error=KafkaError(KafkaError._PARTITION_EOF)))


def test_a_skip_the_low_watermark_has_since_passed_is_a_loss_not_a_gap() -> None:
    # A broker that serves the next batch it holds after retention deleted records mid-read.
    lows = iter([40])
    result = ReadResult(topic="events", partition=2, requested_start=10, start_offset=10)
    cur = _Cursor(result, 10, None, None, None, low_watermark=lambda: next(lows))
    assert cur.accept(FakeMessage(10, 1))
    assert cur.accept(FakeMessage(40, 2))  # 11-39 skipped: not yet proven either way
    with pytest.raises(OffsetGapError, match=r"events\[2\]: offsets 11-39 held no record when read"):
        cur.on_error(FakeMessage(41, error=KafkaError(KafkaError._PARTITION_EOF)))


def test_skips_are_proven_during_a_long_read_not_only_at_its_end() -> None:
    asked: list[int] = []
    lows = iter([5, 30])

    def probe() -> int:
        asked.append(1)
        return next(lows)

    result = ReadResult(topic="events", partition=2, requested_start=10, start_offset=10)
    cur = _Cursor(result, 10, None, None, None, low_watermark=probe)
    assert cur.accept(FakeMessage(10, 1)) and cur.accept(FakeMessage(12, 1))  # 11 skipped
    cur.prove_if_due()
    assert not asked, "not due yet"
    cur._last_proof -= 60  # a minute of reading later
    cur.prove_if_due()
    assert len(asked) == 1, "proven while reading: low 5 is before offset 11"
    assert cur.accept(FakeMessage(40, 1))  # 13-39 skipped, and retention is now past them
    cur._last_proof -= 60
    with pytest.raises(OffsetGapError, match=r"offsets 13-39 held no record when read"):
        cur.prove_if_due()


def test_end_of_partition_closes_the_range() -> None:
    cur = cursor(10)
    assert cur.accept(FakeMessage(10, 1)) and cur.accept(FakeMessage(11, 2))
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
    assert not cur.accept(FakeMessage(0, 10))
    assert not cur.accept(FakeMessage(1, 999))
    assert cur.accept(FakeMessage(2, 1_000))
    assert cur.result.start_offset == 2 and cur.result.skipped_before_window == 2


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
    problems = KafkaArchiveHook.check_contiguity(
        [_range(100, 200)], [_file(100, 149), _file(150, 199)], {("events", 0): 100}
    )
    assert problems == []


def test_gap_and_overlap_with_the_previous_archive_are_named() -> None:
    gap = KafkaArchiveHook.check_contiguity([_range(105, 200)], [_file(105, 199)], {("events", 0): 100})
    assert gap == ["events[0]: gap: the previous archive ends at offset 100, this one starts at 105"]
    overlap = KafkaArchiveHook.check_contiguity([_range(95, 200)], [_file(95, 199)], {("events", 0): 100})
    assert overlap[0].startswith("events[0]: overlap")


def test_a_hole_between_files_is_named() -> None:
    problems = KafkaArchiveHook.check_contiguity([_range(100, 200)], [_file(100, 139), _file(150, 199)], {})
    assert "events[0]: offsets 140-149 are in no file" in problems


def test_offsets_without_a_record_count_as_covered() -> None:
    # Files 100-139 (39 records: one offset inside it is a marker) and 150-199; 140-149 aborted.
    inside = {**_file(100, 139), "records": 39}
    rng = {**_range(100, 200), "records": 89, "no_record": {"offsets": 11}}
    assert KafkaArchiveHook.check_contiguity([rng], [inside, _file(150, 199)], {("events", 0): 100}) == []
    # Fewer offsets without a record than the files leave out: the holes are named.
    short = {**rng, "no_record": {"offsets": 6}}
    problems = KafkaArchiveHook.check_contiguity([short], [inside, _file(150, 199)], {})
    assert "events[0]: offsets 140-149 are in no file" in problems
    assert "events[0]: 100 offsets in [100, 200) but 89 records archived and 6 without a record" in problems


def test_a_file_claiming_more_records_than_its_offsets_is_named() -> None:
    bloated = {**_file(100, 149), "records": 60}
    rng = {**_range(100, 200), "records": 110}
    problems = KafkaArchiveHook.check_contiguity([rng], [bloated, _file(160, 199)], {})
    assert f"events[0]: file {bloated['key']} claims 60 records for offsets 100-149" in problems


def test_a_partition_added_after_its_window_was_archived_is_left_to_the_next_window(
    example_config: dict[str, Any],
) -> None:
    from types import SimpleNamespace

    from backup_pipelines.core.catalog import OffsetRange
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.kafka.archive import WeeklyArchive

    manifest = _manifest(offsets=[OffsetRange(topic="events", partition=0, start_offset=0, end_offset=10)])
    catalog = SimpleNamespace(read=lambda *args: manifest)
    cfg = BackupConfig.model_validate(example_config)
    weekly = WeeklyArchive(None, None, catalog, cfg)  # type: ignore[arg-type]
    spec = {
        "topic": "events",
        "partition": 1,
        "existing": True,
        "recovery_point_id": "20261116T040000Z",
        "interval_start": "2026-11-09T04:00:00+00:00",
        "interval_end": "2026-11-16T04:00:00+00:00",
    }
    result = weekly.archive(spec)
    assert result["stopped_by"] == "not_in_archived_window" and result["files"] == []


def test_many_runs_without_a_record_are_counted_not_listed() -> None:
    cur = cursor(0, low=0)
    for offset in range(0, 2_000, 2):  # a commit marker after every record
        assert cur.accept(FakeMessage(offset, 1))
    cur.on_error(FakeMessage(2_000, error=KafkaError(KafkaError._PARTITION_EOF)))
    summary = cur.result.no_record()
    assert (summary["offsets"], summary["runs"], len(summary["first_runs"])) == (1_000, 1_000, 10)


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


def _weekly(listing: Any, keys: list[str]) -> tuple[Any, Any]:
    from unittest import mock

    from backup_pipelines.core.config import load_config
    from backup_pipelines.kafka.archive import WeeklyArchive

    s3 = mock.Mock()
    s3.list_objects.return_value = [mock.Mock(key=k) for k in keys]
    catalog = mock.Mock()
    catalog.list_points.return_value = listing
    return WeeklyArchive(mock.Mock(), s3, catalog, load_config()), s3


def test_leftovers_are_kept_while_a_manifest_of_the_topic_cannot_be_read() -> None:
    from backup_pipelines.core.catalog import InvalidManifest, Listing

    listing = Listing(invalid=[InvalidManifest(key="catalog/kafka_archive/events/x.json", reason="schema 2")])
    weekly, s3 = _weekly(listing, ["kafka/events/partition=0/100-199.parquet"])
    weekly._remove_stale_attempts("events", 0, 100, keep=set())
    s3.delete_objects.assert_not_called()


def test_only_unlisted_leftovers_of_this_range_are_removed() -> None:
    from backup_pipelines.core.catalog import Listing, ObjectEntry

    listed = "kafka/events/partition=0/100-149.parquet"
    point = _manifest(objects=[ObjectEntry(key=listed, size=1)])
    keys = [
        "kafka/events/partition=0/50-99.parquet",  # before this window: never touched
        listed,  # listed by a manifest: kept
        "kafka/events/partition=0/100-199.parquet",  # a killed attempt's file: removed
        "kafka/events/partition=0/150-199.parquet",  # written by this attempt: kept
    ]
    weekly, s3 = _weekly(Listing(points=[point]), keys)
    weekly._remove_stale_attempts("events", 0, 100, keep={"kafka/events/partition=0/150-199.parquet"})
    s3.delete_objects.assert_called_once_with(
        "analytics-archive", ["kafka/events/partition=0/100-199.parquet"]
    )


def test_an_archive_file_uploaded_in_parts_is_checked_against_s3s_composite_sha256(
    moto_s3: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the part size S3 keeps a checksum of the parts' checksums, not the file's SHA-256:
    the upload is checked against that, and a mismatch is still caught."""
    import os

    from backup_pipelines.core import s3 as s3_archive
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.core.errors import ChecksumMismatchError
    from backup_pipelines.core.s3 import S3ArchiveHook
    from backup_pipelines.kafka import archive as kafka_archive
    from backup_pipelines.kafka.archive import upload_archive_file
    from backup_pipelines.kafka.parquet import ArchiveFile, file_sha256

    moto_s3.create_bucket(Bucket="archive")
    path = tmp_path / "0-9.parquet"
    path.write_bytes(os.urandom(11 * 1024 * 1024))
    archive_file = ArchiveFile(
        path=path, partition=0, first_offset=0, last_offset=9, records=10,
        first_timestamp_ms=1, last_timestamp_ms=2, min_timestamp_ms=1, max_timestamp_ms=2,
        size=path.stat().st_size, sha256=file_sha256(path), raw_bytes=1,
    )  # fmt: skip
    s3 = S3ArchiveHook(aws_conn_id="aws_unit")

    def upload() -> dict[str, Any]:
        return upload_archive_file(
            s3, archive_file, topic="events", bucket="archive", prefix="kafka/", encryption=Encryption(),
            storage_class="GLACIER", object_lock=None, now=datetime.now(UTC), part_size=5 * 1024 * 1024,
        )  # fmt: skip

    entry = upload()
    head = moto_s3.head_object(Bucket="archive", Key=entry["key"], ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"') and entry["sha256"] == archive_file.sha256

    # The file S3 holds no longer matches what was written (as if a part were corrupted).
    real = s3_archive.composite_sha256_of_file
    monkeypatch.setattr(kafka_archive, "composite_sha256_of_file", lambda *a, **k: "X" + real(*a, **k)[1:])
    with pytest.raises(ChecksumMismatchError, match="composite SHA-256 .* written in 5242880-byte parts"):
        upload()
