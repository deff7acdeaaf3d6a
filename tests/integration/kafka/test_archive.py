"""The weekly archive's partition task against the embedded stack: a task killed mid-upload and
retried leaves no duplicate and no gap; a transactional topic is archived with its markers
recorded as holding no record. Broker faults: test_kafka_broker_faults.py."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WINDOW_END = datetime(2026, 3, 2, 4, tzinfo=UTC)
WINDOW_START = WINDOW_END - timedelta(days=7)


def _weekly(write_config: Any, example_config: dict[str, Any], topic: str) -> Any:
    from support.kafka import weekly_archive

    return weekly_archive(write_config, example_config, topic)


def _seed(stack: Any, topic: str, messages: int = 1_500) -> None:
    from backup_pipelines.dev.sample_data import seed_kafka

    seed_kafka(
        stack.kafka_bootstrap,
        topic,
        start=WINDOW_START,
        end=WINDOW_END + timedelta(days=1),
        messages=messages,
        partitions=1,
    )


def _listed(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_task_killed_mid_upload_and_retried_leaves_no_duplicate_and_no_gap(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any], monkeypatch: Any
) -> None:
    from backup_pipelines.kafka import weekly as module
    from backup_pipelines.kafka.parquet import read_offsets

    topic = f"it-retry-{uuid.uuid4().hex[:8]}"
    weekly = _weekly(write_config, example_config, topic)
    _seed(embedded_stack, topic)
    specs, _ = weekly.plan(WINDOW_START, WINDOW_END)
    bucket, prefix = weekly.cfg.storage.archive_bucket, f"kafka/{topic}/partition=0/"

    # Attempt 1 dies on its third upload (the worker is killed mid-upload).
    real_upload = module.upload_archive_file
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("worker killed")
        return real_upload(*args, **kwargs)

    monkeypatch.setattr(module, "upload_archive_file", dying)
    with pytest.raises(KeyboardInterrupt):
        weekly.archive(specs[0])
    left_behind = _listed(s3, bucket, prefix)
    assert len(left_behind) == 2
    # A stray file of an attempt that split differently (another file_max_bytes).
    first_stray = int(left_behind[0].rsplit("/", 1)[1].split("-")[0])
    stray = f"{prefix}{first_stray}-{first_stray + 3}.parquet"
    s3.put_object(Bucket=bucket, Key=stray, Body=b"garbage")

    # Attempt 2 (the retry) rewrites the same keys and removes what no manifest will reference.
    monkeypatch.setattr(module, "upload_archive_file", real_upload)
    result = weekly.archive(specs[0])
    assert weekly.check([result]) == []
    weekly.write_manifests([result], producer={"dag_id": "test"})
    keys = _listed(s3, bucket, prefix)
    assert keys == sorted(f["key"] for f in result.files)
    assert set(left_behind) <= set(keys) and stray not in keys

    offsets: list[int] = []
    for key in keys:
        local = embedded_stack.base_dir / f"{uuid.uuid4().hex}.parquet"
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
        local.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        offsets += read_offsets(local)
        local.unlink()
    assert sorted(offsets) == list(range(result.start_offset, result.end_offset))
    assert len(offsets) == result.records > 0


def _transactions(bootstrap: str, topic: str, plan: list[tuple[bool, int]], start: datetime) -> None:
    """Produce ``(commit?, records)`` transactions to partition 0, timestamps from ``start`` on."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"it-{topic}"})
    producer.init_transactions(30)
    ts = int(start.timestamp() * 1000)
    for n, (commit, records) in enumerate(plan):
        producer.begin_transaction()
        for i in range(records):
            ts += 60_000
            producer.produce(topic, key=b"k%d" % i, value=b"tx%d-%d" % (n, i), partition=0, timestamp=ts)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


def _committed_offsets(bootstrap: str, topic: str, start: int) -> list[int]:
    """What a plain read_committed consumer sees from ``start`` to the end of partition 0."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "it-plain",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, 0, start)])
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            messages = consumer.consume(100, timeout=0.5)
            offsets += [m.offset() for m in messages if m.error() is None]
            if any(m.error() is not None for m in messages):
                return offsets
        raise AssertionError(f"{topic}[0]: no end of partition within 30 s")
    finally:
        consumer.close()


def test_a_transactional_topic_is_archived_with_its_markers_recorded_as_holding_no_record(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """Transaction markers and aborted records take offsets no consumer reads. The archive holds
    exactly the committed records, records the other offsets in the manifest, and passes its
    coverage check, also for a week that starts on a marker."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from backup_pipelines.kafka.parquet import read_offsets

    topic = f"it-tx-{uuid.uuid4().hex[:8]}"
    bootstrap = embedded_stack.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the future resolves
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    weekly = _weekly(write_config, example_config, topic)
    bucket = weekly.cfg.storage.archive_bucket
    weeks = [(WINDOW_START, WINDOW_END), (WINDOW_END, WINDOW_END + timedelta(days=7))]
    end = 0
    for week, (start, stop) in enumerate(weeks):
        _transactions(bootstrap, topic, [(True, 8), (False, 3), (True, 8)], start)
        committed = _committed_offsets(bootstrap, topic, end)
        specs, _ = weekly.plan(start, stop)
        result = weekly.archive(specs[0])
        assert weekly.check([result]) == [], f"week {week + 1}"
        (manifest,) = weekly.write_manifests([result], producer={"dag_id": "test"})

        archived: list[int] = []
        for entry in result.files:
            local = embedded_stack.base_dir / f"{uuid.uuid4().hex}.parquet"
            s3.restore_object(Bucket=bucket, Key=entry["key"], RestoreRequest={"Days": 1})
            local.write_bytes(s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read())
            archived += read_offsets(local)
            local.unlink()
        assert archived == committed and len(archived) == 16, f"week {week + 1}"
        no_record = manifest.details["offsets_without_record"]["0"]
        assert no_record["offsets"] == no_record["runs"] == 2, "one commit marker per committed transaction"
        assert no_record["offsets"] + len(archived) == result.end_offset - result.start_offset
        if week == 1:
            assert result.start_offset == end, "week 2 continues where week 1 ended"
        end = result.end_offset
