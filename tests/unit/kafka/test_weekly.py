"""The weekly archive's decisions: partitions added later, leftovers of killed attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from support.kafka import archive_manifest


def test_a_partition_added_after_its_window_was_archived_is_left_to_the_next_window(
    example_config: dict[str, Any],
) -> None:
    from types import SimpleNamespace

    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.manifest import OffsetRange
    from backup_pipelines.kafka.specs import PartitionSpec
    from backup_pipelines.kafka.weekly import WeeklyArchive

    manifest = archive_manifest(
        offsets=[OffsetRange(topic="events", partition=0, start_offset=0, end_offset=10)]
    )
    catalog = SimpleNamespace(read=lambda *args: manifest)
    cfg = BackupConfig.model_validate(example_config)
    weekly = WeeklyArchive(None, None, catalog, cfg)  # type: ignore[arg-type]
    spec = PartitionSpec(
        topic="events",
        partition=1,
        start_offset=None,
        start_mode="earliest",
        existing=True,
        recovery_point_id="20261116T040000Z",
        interval_start=datetime(2026, 11, 9, 4, tzinfo=UTC),
        interval_end=datetime(2026, 11, 16, 4, tzinfo=UTC),
        previous=None,
    )
    result = weekly.archive(spec)
    assert result.stopped_by == "not_in_archived_window" and result.files == []


def _weekly(listing: Any, keys: list[str]) -> tuple[Any, Any]:
    from unittest import mock

    from backup_pipelines.core.config import load_config
    from backup_pipelines.kafka.weekly import WeeklyArchive

    s3 = mock.Mock()
    s3.iter_objects.return_value = [mock.Mock(key=k) for k in keys]
    catalog = mock.Mock()
    catalog.list_points.return_value = listing
    return WeeklyArchive(mock.Mock(), s3, catalog, load_config()), s3


def test_leftovers_are_kept_while_a_manifest_of_the_topic_cannot_be_read() -> None:
    from backup_pipelines.core.manifest import InvalidManifest, Listing

    listing = Listing(invalid=[InvalidManifest(key="catalog/kafka_archive/events/x.json", reason="schema 2")])
    weekly, s3 = _weekly(listing, ["kafka/events/partition=0/100-199.parquet"])
    weekly.remove_stale_attempts("events", 0, 100, keep=set())
    s3.delete_keys.assert_not_called()


def test_only_unlisted_leftovers_of_this_range_are_removed() -> None:
    from backup_pipelines.core.manifest import Listing, ObjectEntry

    listed = "kafka/events/partition=0/100-149.parquet"
    point = archive_manifest(objects=[ObjectEntry(key=listed, size=1)])
    keys = [
        "kafka/events/partition=0/50-99.parquet",  # before this window: never touched
        listed,  # listed by a manifest: kept
        "kafka/events/partition=0/100-199.parquet",  # a killed attempt's file: removed
        "kafka/events/partition=0/150-199.parquet",  # written by this attempt: kept
    ]
    weekly, s3 = _weekly(Listing(points=[point]), keys)
    weekly.remove_stale_attempts("events", 0, 100, keep={"kafka/events/partition=0/150-199.parquet"})
    s3.delete_keys.assert_called_once_with("analytics-archive", ["kafka/events/partition=0/100-199.parquet"])
