"""Ingest offsets, the effective RPO and the catch-up's refusals against the embedded Tansu broker
and a catalog in the stack's S3 (real sockets).

Each test has its own topic, group and catalog prefix.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.config import ClickHouseDataset
from backup_pipelines.core.config.pipelines import ClickHouseIngest
from backup_pipelines.core.errors import OffsetGapError, UnsafeOperationError

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


def _dataset(topic: str, group: str, **ingest: Any) -> ClickHouseDataset:
    return ClickHouseDataset(
        name="zl_it",
        database="zl_it",
        tables=["stream"],
        ingest=ClickHouseIngest.model_validate({"topics": [topic], "consumer_groups": [group], **ingest}),
    )


def _consumed(bootstrap: str, topic: str, group: str, commits: dict[int, int]) -> None:
    """The group commits ``commits`` (partition -> offset), as an ingestion would after inserting."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in commits.items()], asynchronous=False)
    finally:
        consumer.close()


@pytest.fixture
def topic(embedded_stack: Any) -> str:
    from support.kafka import create_topic

    from backup_pipelines.dev.ingest import produce_events

    name = f"it-ingest-{uuid.uuid4().hex[:6]}"
    create_topic(embedded_stack.kafka_bootstrap, name, 3)
    produce_events(embedded_stack.kafka_bootstrap, name, 0, 90, partitions=3)
    return name


def test_recorded_offsets_are_the_committed_ones_and_the_low_watermark_where_none(
    embedded_stack: Any, topic: str
) -> None:
    from backup_pipelines.core.ingest import IngestGroups, read_ingest_offsets

    bootstrap = embedded_stack.kafka_bootstrap
    _consumed(bootstrap, topic, "it-g1", {0: 30, 1: 12})
    groups = IngestGroups("kafka_default")
    offsets = read_ingest_offsets(groups, _dataset(topic, "it-g1"))
    assert offsets == {"it-g1": {topic: {"0": 30, "1": 12, "2": 0}}}  # partition 2: nothing committed
    assert groups.state("it-g1") in ("EMPTY", "DEAD")


def test_a_snapshot_of_a_missing_topic_records_why_it_has_no_offsets(
    embedded_stack: Any, example_config: Any
) -> None:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.ingest import capture_ingest_offsets

    cfg = BackupConfig.model_validate(example_config)
    details = capture_ingest_offsets(cfg, _dataset("it-no-such-topic", "g"))
    assert "ingest_offsets" not in details
    assert details["ingest_error"] == (
        "SourceNotFoundError: ingest topic 'it-no-such-topic' does not exist on the Kafka cluster"
    )


def test_a_reset_sets_the_groups_offsets(embedded_stack: Any, topic: str) -> None:
    from backup_pipelines.core.ingest import IngestGroups

    groups = IngestGroups("kafka_default")
    _consumed(embedded_stack.kafka_bootstrap, topic, "it-g2", {0: 30, 1: 30, 2: 30})
    groups.reset("it-g2", {topic: {0: 4, 2: 17}})
    assert groups.committed("it-g2", topic, [0, 1, 2]) == {0: 4, 1: 30, 2: 17}


def _catalog(embedded_stack: Any) -> Any:
    from support.catalog import catalog_on

    return catalog_on(
        embedded_stack.s3_client(), "analytics-backups", prefix=f"it-zl-{uuid.uuid4().hex[:6]}/"
    )


def _point(offsets: dict[str, Any] | None, hours_ago: float) -> Any:
    from support.catalog import manifest

    details = {"ingest_offsets": offsets, "ingest_read_at": NOW.isoformat()} if offsets else {}
    return manifest(dataset="zl_it", captured_at=NOW - timedelta(hours=hours_ago), details=details)


def _archive(topic: str, ranges: dict[int, tuple[int, int]]) -> Any:
    from support.catalog import manifest

    from backup_pipelines.core.manifest import OffsetRange

    return manifest(
        kind="kafka_archive",
        dataset=topic,
        captured_at=NOW - timedelta(days=1),
        offsets=[
            OffsetRange(topic=topic, partition=p, start_offset=a, end_offset=b)
            for p, (a, b) in ranges.items()
        ],
    )


@pytest.fixture
def faulty_topic(faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A topic on the broker whose oldest records can be deleted as retention would (batches of
    25 records per partition); the Kafka connection points at it."""
    from support.kafka import create_topic

    from backup_pipelines.dev.ingest import produce_events

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    name = f"it-retained-{uuid.uuid4().hex[:6]}"
    create_topic(faulty_kafka.bootstrap, name, 3)
    produce_events(faulty_kafka.bootstrap, name, 0, 90, partitions=3)
    return name


def test_effective_rpo_is_zero_when_topic_and_archives_cover_and_the_snapshot_age_with_a_hole(
    embedded_stack: Any, faulty_kafka: Any, faulty_topic: str
) -> None:
    from backup_pipelines.core.ingest import IngestGroups
    from backup_pipelines.recovery.effective import effective_rpo

    topic = faulty_topic
    groups = IngestGroups("kafka_default")

    catalog = _catalog(embedded_stack)
    dataset = _dataset(topic, "it-g3")
    catalog.write(_point({"it-g3": {topic: {"0": 10, "1": 10, "2": 10}}}, hours_ago=2))
    catalog.write(_point(None, hours_ago=0.5))  # newer, but without offsets (Kafka was down)

    covered = effective_rpo(catalog, groups, dataset, now=NOW)
    assert covered.seconds == 0.0 and covered.holes == []
    assert covered.point == (NOW - timedelta(hours=2)).strftime("%Y%m%dT%H%MZ")

    low = faulty_kafka.drop_batches_through(topic, 0, 10)  # retention deleted offsets 0..low-1
    assert 10 < low < 30
    hole = effective_rpo(catalog, groups, dataset, now=NOW)
    assert hole.seconds == 1800.0  # the newest verified snapshot's age
    assert hole.holes == [f"{topic}[0] offsets 10-{low - 1} deleted by retention and in no verified archive"]

    catalog.write(_archive(topic, {0: (0, 11), 1: (0, 11), 2: (0, 11)}))
    archived = effective_rpo(catalog, groups, dataset, now=NOW)
    assert archived.holes == [
        f"{topic}[0] offsets 11-{low - 1} deleted by retention and in no verified archive"
    ]
    catalog.write(_archive(topic, {0: (11, 30)}).model_copy(update={"recovery_point_id": "20261127T0000Z"}))
    covered = effective_rpo(catalog, groups, dataset, now=NOW)
    assert (covered.seconds, covered.from_archives) == (0.0, low - 10)


def test_a_catch_up_is_refused_before_any_change_for_another_database_or_a_hole(
    embedded_stack: Any, faulty_kafka: Any, faulty_topic: str, example_config: Any
) -> None:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.ingest import IngestGroups
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.kafka.client import KafkaClient
    from backup_pipelines.recovery.service import CatchUpService

    topic = faulty_topic
    example_config["clickhouse_snapshots"]["datasets"] = [_dataset(topic, "it-g4").model_dump(mode="json")]
    cfg = BackupConfig.model_validate(example_config)
    catalog = _catalog(embedded_stack)
    point = _point({"it-g4": {topic: {"0": 5, "1": 5, "2": 5}}}, hours_ago=1)
    catalog.write(point)
    low = faulty_kafka.drop_batches_through(topic, 1, 5)
    groups = IngestGroups("kafka_default")
    service = CatchUpService(cfg, catalog, groups, KafkaClient(), BackupS3Hook())
    restored = {"dataset": "zl_it", "recovery_point_id": point.recovery_point_id, "tables": ["stream"]}

    with pytest.raises(UnsafeOperationError, match="the restore went to 'restore_20261127'"):
        service.plan({**restored, "target_database": "restore_20261127"}, dry_run=False)
    with pytest.raises(OffsetGapError) as info:
        service.plan({**restored, "target_database": "zl_it"}, dry_run=False)
    assert f"{topic}[1]: offsets 5-{low - 1} deleted by retention and in no verified archive" in str(
        info.value
    )
    plan = service.plan({**restored, "target_database": "zl_it"}, dry_run=True)  # the dry run shows it
    assert plan.holes == [f"{topic}[1]: offsets 5-{low - 1} deleted by retention and in no verified archive"]
    assert groups.committed("it-g4", topic, [0, 1, 2]) == {0: None, 1: None, 2: None}  # nothing reset
