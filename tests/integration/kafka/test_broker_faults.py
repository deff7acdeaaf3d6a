"""The archive against a broker that fails for real (tests/support/kafka_faults.py): frozen
mid-consume, its connections cut mid-consume, killed and restarted mid-consume, and its oldest
records deleted as retention does. Nothing may be lost or duplicated, and a loss must be named."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

START = datetime(2026, 2, 23, tzinfo=UTC)
MESSAGES = 3_000


def _topic(faulty_kafka: Any, prefix: str, messages: int = MESSAGES) -> str:
    from support.kafka_faults import SMALL_BATCHES

    from backup_pipelines.dev.sample_data import seed_kafka

    topic = f"it-{prefix}-{uuid.uuid4().hex[:8]}"
    end = START + timedelta(days=7)
    bootstrap = faulty_kafka.bootstrap
    seed_kafka(
        bootstrap, topic, start=START, end=end, messages=messages, partitions=1, producer_config=SMALL_BATCHES
    )
    return topic


def _hook(faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from backup_pipelines.kafka.client import KafkaClient

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    # Small fetches: most of the partition is still on the broker when the fault hits.
    return KafkaClient(
        group_id="it-faults",
        batch_size=50,
        stall_timeout=60,
        consumer_config={
            "fetch.max.bytes": 4096,
            "message.max.bytes": 4096,
            "max.partition.fetch.bytes": 4096,
            "queued.max.messages.kbytes": 4,
            "socket.timeout.ms": 5000,
            "reconnect.backoff.max.ms": 1000,
        },
    )


def _archive_with_fault(hook: Any, topic: str, fault: Callable[[], None]) -> tuple[Any, list[int], int]:
    """Archive the whole partition; ``fault`` runs once 200 records are read, in the consuming
    thread (librdkafka's own threads hold the connections and meet the fault). Not in a thread of
    its own: a restarted broker dies with the thread that started it (``PR_SET_PDEATHSIG``).
    Returns the result, every archived offset in file order, and where the fault hit."""
    from backup_pipelines.kafka.archive import archive_partition
    from backup_pipelines.kafka.parquet import read_offsets

    offsets: list[int] = []
    hit: list[int] = []

    def inject(result: Any) -> None:
        if not hit:
            hit.append(result.records)
            fault()

    def keep(archive_file: Any) -> dict[str, Any]:
        offsets.extend(read_offsets(archive_file.path))
        return {"records": archive_file.records}

    result, _ = archive_partition(
        hook,
        topic=topic,
        partition=0,
        start_offset=0,
        end_offset=None,
        upload=keep,
        file_max_bytes=16_384,
        row_group_rows=100,
        progress_every=200,
        on_progress=inject,
    )
    return result, offsets, hit[0]


def _assert_every_offset_archived_once(result: Any, offsets: list[int]) -> None:
    assert result.stopped_by == "end_of_partition"
    assert offsets == list(range(MESSAGES)) and result.records == MESSAGES and result.end_offset == MESSAGES


def test_broker_frozen_mid_consume_is_waited_out_without_loss(
    faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP the broker for 6 s mid-consume: every connection hangs, as in a network partition."""
    topic = _topic(faulty_kafka, "frozen")
    hook = _hook(faulty_kafka, monkeypatch)
    try:
        result, offsets, at = _archive_with_fault(hook, topic, lambda: faulty_kafka.freeze(6.0))
    finally:
        faulty_kafka.thaw()
    assert 200 <= at < MESSAGES and faulty_kafka.freezes == 1, "the broker was frozen mid-consume"
    _assert_every_offset_archived_once(result, offsets)


def test_connections_cut_mid_consume_are_survived_without_loss(
    faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every broker connection is reset through the proxy, and new ones are refused for 3 s."""
    topic = _topic(faulty_kafka, "cut")
    hook = _hook(faulty_kafka, monkeypatch)
    cut: list[int] = []

    def cut_everything() -> None:
        cut.append(faulty_kafka.proxy.cut(down_for=3))

    result, offsets, at = _archive_with_fault(hook, topic, cut_everything)
    assert 200 <= at < MESSAGES and cut[0] >= 1, "connections were open and cut mid-consume"
    _assert_every_offset_archived_once(result, offsets)


def test_broker_killed_and_restarted_mid_consume_loses_nothing(
    faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the broker mid-consume, keep it down 2 s, restart it on its log (S3 store)."""
    topic = _topic(faulty_kafka, "restart")
    hook = _hook(faulty_kafka, monkeypatch)
    first_pid = faulty_kafka.service.proc.pid
    result, offsets, at = _archive_with_fault(hook, topic, faulty_kafka.kill_and_restart)
    restarted = faulty_kafka.service.proc.pid != first_pid
    assert 200 <= at < MESSAGES and restarted, "the broker was restarted mid-consume"
    _assert_every_offset_archived_once(result, offsets)


def test_records_deleted_by_retention_are_refused_naming_the_missing_offsets(
    faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker really drops its oldest batches: the low watermark moves past the next offset
    to archive, and reading from that offset fails naming the range, not skipping it."""
    from backup_pipelines.core.errors import OffsetGapError
    from backup_pipelines.kafka.cursor import ReadResult

    topic = _topic(faulty_kafka, "retention", messages=600)
    hook = _hook(faulty_kafka, monkeypatch)
    low = faulty_kafka.drop_batches_through(topic, 0, 100)
    assert 100 < low < 600
    assert hook.watermarks(topic, 0)[0] == low, "the broker reports the new low watermark"

    result = ReadResult(topic, 0, requested_start=0, start_offset=0)
    with pytest.raises(OffsetGapError) as failure:
        list(hook.read_partition(topic, 0, 0, result))
    # Tansu serves the next batch it still holds. Kafka answers OFFSET_OUT_OF_RANGE instead, which
    # auto.offset.reset=error turns into an OffsetGapError too (tests/unit/kafka/test_cursor.py).
    assert str(failure.value).startswith(
        f"{topic}[0]: offsets 0-{low - 1} are missing: the first record read is at {low}"
    )


def test_records_deleted_ahead_of_the_reader_fail_the_read_naming_them(
    faulty_kafka: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention catches up with a slow archive: batches it has not read yet are deleted mid-read.
    The broker skips to the next batch it holds; the skip must fail the read, not pass as offsets
    that held no record."""
    from backup_pipelines.core.errors import OffsetGapError

    topic = _topic(faulty_kafka, "overtaken")
    hook = _hook(faulty_kafka, monkeypatch)
    dropped: list[int] = []
    with pytest.raises(OffsetGapError) as failure:
        _archive_with_fault(
            hook, topic, lambda: dropped.append(faulty_kafka.drop_batches_through(topic, 0, 1_500))
        )
    low = dropped[0]
    message = str(failure.value)
    assert message.startswith(f"{topic}[0]: offsets ")
    first, last = (int(n) for n in message.split("offsets ", 1)[1].split(" ", 1)[0].split("-"))
    assert 200 <= first < last == low - 1, message
    assert f"the low watermark has since moved past them (to {low})" in message
