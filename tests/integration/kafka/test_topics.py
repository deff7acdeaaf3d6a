"""A configured topic that does not exist never looks protected: the plan fails naming it and the
closest existing topics, on a broker that creates topics on a producer's metadata request, and
the archive creates nothing and writes nothing. Also when the topic is deleted between two runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

W1 = datetime(2026, 5, 4, 4, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_a_misspelt_topic_fails_the_plan_naming_the_closest_topics_and_is_not_created(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from confluent_kafka.admin import AdminClient
    from support.kafka import create_topic, topic_names, weekly_archive

    from backup_pipelines.core.errors import SourceNotFoundError

    bootstrap = embedded_stack.kafka_bootstrap
    tag = uuid.uuid4().hex[:6]
    real, typo = f"orders-{tag}", f"ordrs-{tag}"
    create_topic(bootstrap, real, 2)
    # The broker auto-creates topics: a client with librdkafka's producer defaults creates one by
    # asking about it. The archive must not.
    probe = f"autocreated-by-a-metadata-request-{uuid.uuid4().hex}"
    AdminClient({"bootstrap.servers": bootstrap}).list_topics(probe, timeout=30)
    assert probe in topic_names(bootstrap), "precondition: the broker creates topics on metadata requests"

    weekly = weekly_archive(write_config, example_config, real, typo)
    with pytest.raises(SourceNotFoundError) as failure:
        weekly.plan(W1 - WEEK, W1)
    assert str(failure.value) == (
        f"kafka_archive.topics: Kafka topic {typo!r} does not exist on the cluster (closest existing: {real})"
    )
    assert typo not in topic_names(bootstrap)
    for prefix in (f"kafka/{typo}/", f"kafka/{real}/"):
        assert "Contents" not in s3.list_objects_v2(Bucket=weekly.cfg.storage.archive_bucket, Prefix=prefix)
    assert weekly.catalog.list_points("kafka_archive", typo).points == []


def test_a_topic_deleted_between_two_runs_fails_the_second_and_is_not_re_created(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from confluent_kafka.admin import AdminClient
    from support.kafka import create_topic, produce_stamped, run_window, topic_names, weekly_archive

    from backup_pipelines.core.errors import SourceNotFoundError

    bootstrap = embedded_stack.kafka_bootstrap
    topic = f"gone-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, 2)
    stamp = int((W1 - WEEK / 2).timestamp() * 1000)
    produce_stamped(bootstrap, topic, [(p, stamp) for p in (0, 1, 0)])
    weekly = weekly_archive(write_config, example_config, topic)
    _, (first,) = run_window(weekly, W1 - WEEK, W1)
    assert first.message_count == 3

    bucket = weekly.cfg.storage.archive_bucket
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"kafka/{topic}/")["Contents"]}
    assert keys == {entry.key for entry in first.objects}

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    # The broker still creates topics on a producer-style metadata request: a client that asked
    # about the deleted topic that way would bring it back.
    probe = f"autocreated-after-delete-{uuid.uuid4().hex}"
    admin.list_topics(probe, timeout=30)
    assert probe in topic_names(bootstrap), "precondition: the broker creates topics on metadata requests"
    with pytest.raises(SourceNotFoundError, match=f"Kafka topic {topic!r} does not exist on the cluster"):
        weekly.plan(W1, W1 + WEEK)
    assert topic not in topic_names(bootstrap), "the archive re-created the deleted topic"
    points = weekly.catalog.list_points("kafka_archive", topic).points
    assert [p.recovery_point_id for p in points] == [first.recovery_point_id]
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"kafka/{topic}/")["Contents"]}
    assert after == keys, "the failed run wrote or removed archive files"
