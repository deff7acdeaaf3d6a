"""A catch-up whose archive files are in GLACIER: the ``replay_since_capture`` task requests their
restores, defers to the triggerer while S3 restores them, and re-feeds once they are readable.

The embedded moto S3 finishes a restore at once unless told otherwise: here its state manager
keeps each restore "in progress" (``x-amz-restore: ongoing-request="true"``, GET refused) for
``RESTORE_SECONDS``, as S3 does for hours. Everything else is real: the Kafka broker whose oldest
records retention deleted (tests/support/kafka_faults.py), the weekly archive, chDB, the
``S3RestoreTrigger`` polling HeadObject, and the ingestion consuming what was re-fed.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from support import recovery as rec

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

W1 = datetime(2026, 6, 1, 4, tzinfo=UTC)
RESTORE_SECONDS = 5
ARCHIVE_BUCKET = "analytics-archive"


@contextmanager
def restores_take(stack: Any, seconds: int) -> Iterator[None]:
    """moto's S3 restores stay in progress for ``seconds`` from the first read after the request
    (of an object older than ``seconds``), then are done."""

    def call(action: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{stack.s3_endpoint}/moto-api/state-manager/{action}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # the local moto server
            assert answer.status < 300

    call(
        "set-transition",
        {"model_name": "s3::keyrestore", "transition": {"progression": "time", "seconds": seconds}},
    )
    try:
        yield
    finally:
        call("unset-transition", {"model_name": "s3::keyrestore"})


def _seed(faulty_kafka: Any, client: Any, write_config: Any, example_config: dict[str, Any], n: str) -> Any:
    """A snapshot at offsets 50, 300 events archived weekly (GLACIER), 60 more, the table dropped and
    retention past offset 74 of each partition: the catch-up needs the archive for 50 .. low."""
    from support.kafka import run_window, weekly_archive

    from backup_pipelines.dev.ingest import produce_events

    bootstrap = faulty_kafka.bootstrap
    db, topic, group, ingest = rec.setup(
        client, bootstrap, write_config, example_config, n, prefix="cold_archive"
    )
    values = rec.snapshot_between(bootstrap, topic, ingest, before=100, after=200)
    dags = rec.dags()
    # Small files (tens of records): a wider range needs more of them.
    weekly = weekly_archive(
        write_config, rec.config(example_config, db, topic, group), topic, file_max_bytes=1024
    )
    _, (archive,) = run_window(weekly, W1 - timedelta(days=7), W1)
    archived_at = time.monotonic()
    assert {o.storage_class for o in archive.objects} == {"GLACIER"}
    for p in (0, 1):
        spans = sorted((o.first_offset, o.last_offset) for o in archive.objects if o.partition == p)
        assert len(spans) > 4 and spans[0][0] == 0 and spans[-1][1] == 149, spans
    values += produce_events(bootstrap, topic, 300, 60, partitions=2)
    ingest.drain()
    lows = {p: faulty_kafka.drop_batches_through(topic, p, 74) for p in (0, 1)}
    assert all(50 < low < 150 for low in lows.values()), lows
    client.command(f"DROP TABLE {db}.stream SYNC")
    # moto's restore states count from the object's creation: a restore requested sooner than
    # RESTORE_SECONDS after it would look done at once (then in progress).
    time.sleep(max(0.0, archived_at + RESTORE_SECONDS + 1 - time.monotonic()))
    return SimpleNamespace(
        db=db, topic=topic, group=group, ingest=ingest, values=values, lows=lows, dags=dags, archive=archive
    )


def _files(archive: Any, lows: dict[int, int], start: int = 50) -> set[str]:
    """Keys of the archive files holding offsets ``start .. low-1`` of each partition."""
    return {
        o.key
        for o in archive.objects
        if o.partition in lows and o.last_offset >= start and o.first_offset < lows[o.partition]
    }


def _restore_header(s3: Any, key: str) -> str | None:
    return s3.head_object(Bucket=ARCHIVE_BUCKET, Key=key).get("Restore")


def _all_back(seed: Any, client: Any) -> None:
    """The ingestion, started again, stores every event once (committed before the BACKUP)."""
    seed.ingest.drain()
    final = rec.rows(client, seed.db, final=True)
    assert len(final) == 360
    assert sorted(r[3] for r in final) == sorted(seed.values)
    assert rec.twice(client, seed.db) == []


def test_restore_with_replay_waits_in_the_triggerer_for_glacier_archive_files(
    faulty_kafka: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    s3: Any,
) -> None:
    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    seed = _seed(faulty_kafka, clickhouse_client, write_config, example_config, "a")
    cold = _files(seed.archive, seed.lows)
    assert cold and all(_restore_header(s3, key) is None for key in cold)
    dag = seed.dags["clickhouse_restore"]
    monkeypatch.setattr(dag.task_dict["replay_since_capture"], "poll_interval", 1.0)

    started = time.monotonic()
    with restores_take(faulty_kafka.stack, RESTORE_SECONDS):
        run = run_dag_in_process(dag, run_conf=rec.conf(seed.db))
    assert rec.ran(run) == {"restore": "success", "replay_since_capture": "success"}
    assert time.monotonic() - started > RESTORE_SECONDS
    # Deferred (no retry: the first try resumed) while S3 restored the files, then re-fed.
    (ti,) = [t for t in run.get_task_instances() if t.task_id == "replay_since_capture"]
    assert ti.try_number == 1
    log = capfd.readouterr().out + caplog.text  # task and trigger logs (structlog), Airflow's
    assert f"Waiting for {len(cold)} archive file restore(s) in the triggerer" in log
    assert "[DAG TEST] running trigger in line" in log
    assert f"of {len(cold)} object(s) in s3://{ARCHIVE_BUCKET} restored; waiting for" in log
    assert f"all {len(cold)} object(s) in s3://{ARCHIVE_BUCKET} are readable" in log
    restored = {key for key in cold if 'ongoing-request="false"' in (_restore_header(s3, key) or "")}
    assert restored == cold

    result = rec.xcom(run, "replay_since_capture")
    assert result["archive_records"] == {f"{seed.topic}[{p}]": seed.lows[p] - 50 for p in (0, 1)}
    assert result["topic_records"] == {f"{seed.topic}[{p}]": 180 - seed.lows[p] for p in (0, 1)}
    assert rec.group_offsets(faulty_kafka.bootstrap, seed.group, seed.topic, 2) == seed.lows
    _all_back(seed, clickhouse_client)


class _Ti:
    """The task instance the operator asks for the restore task's summary."""

    def __init__(self, restored: dict[str, Any]) -> None:
        self.restored = restored

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "restore"
        return self.restored


def _first_event(trigger: Any, timeout: float = 60.0) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout))


def test_the_catch_up_defers_for_glacier_files_and_plans_again_after_the_wait(
    faulty_kafka: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    s3: Any,
) -> None:
    """The operator as the triggerer drives it: ``execute`` defers with the trigger for exactly the
    cold files and changes nothing; a failed wait fails the task, changing nothing; retention that
    deletes more of the topic during the wait is read from the archives after it (its files
    restored first), not lost."""
    from airflow.sdk.exceptions import TaskDeferred
    from support.kafka import topic_names

    from backup_pipelines.core.errors import ObjectNotRestoredError
    from backup_pipelines.core.s3_restore import S3RestoreTrigger
    from backup_pipelines.recovery.operators import ReplaySinceCaptureOperator

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    bootstrap = faulty_kafka.bootstrap
    seed = _seed(faulty_kafka, clickhouse_client, write_config, example_config, "b")
    run = run_dag_in_process(
        seed.dags["clickhouse_restore"], run_conf=rec.conf(seed.db, replay_since_capture=False)
    )
    assert rec.ran(run) == {"restore": "success", "replay_since_capture": "skipped"}
    form = rec.conf(seed.db)
    context: Any = {
        "ti": _Ti(rec.xcom(run, "restore")),
        "dag_run": SimpleNamespace(conf=form, dag_id="clickhouse_restore"),
        "params": form,
    }
    op = ReplaySinceCaptureOperator(task_id="replay_since_capture", poll_interval=0.5, timeout_hours=2)
    committed = rec.group_offsets(bootstrap, seed.group, seed.topic, 2)
    assert committed == {0: 180, 1: 180}

    with restores_take(faulty_kafka.stack, RESTORE_SECONDS):
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        deferral, first = deferred.value, _files(seed.archive, seed.lows)
        trigger = deferral.trigger
        assert isinstance(trigger, S3RestoreTrigger)
        assert (trigger.bucket, sorted(trigger.keys)) == (ARCHIVE_BUCKET, sorted(first))
        assert (trigger.aws_conn_id, trigger.poll_interval) == ("aws_default", 0.5)
        assert deferral.method_name == "execute_complete"
        assert deferral.timeout == timedelta(hours=2)
        # Requested, not readable yet; nothing produced, no offset moved.
        assert all('ongoing-request="true"' in (_restore_header(s3, key) or "") for key in first)
        assert f"{seed.topic}.replay" not in topic_names(bootstrap)
        assert rec.group_offsets(bootstrap, seed.group, seed.topic, 2) == committed

        with pytest.raises(ObjectNotRestoredError, match="restore of the archive files failed: denied"):
            op.execute_complete(context, {"status": "error", "message": "denied"})
        assert f"{seed.topic}.replay" not in topic_names(bootstrap)

        # Retention keeps deleting while S3 restores (a Bulk restore takes hours).
        lows = {p: faulty_kafka.drop_batches_through(seed.topic, p, 110) for p in (0, 1)}
        assert all(seed.lows[p] < lows[p] < 150 for p in (0, 1)), (seed.lows, lows)
        assert _files(seed.archive, lows) - first  # the range deleted during the wait needs more files
        event = _first_event(trigger)
        assert event["status"] == "success" and sorted(event["keys"]) == sorted(first)

        result, waits, restored = None, 0, set(first)
        while result is None:
            next_kwargs = {**(deferral.kwargs or {}), "event": event}  # as the triggerer resumes it
            try:
                result = op.resume_execution(deferral.method_name, next_kwargs, context)
            except TaskDeferred as again:
                # Files of the range retention deleted during the wait that the first ones did not hold.
                waits += 1
                assert waits == 1 and set(again.trigger.keys) == _files(seed.archive, lows) - restored
                restored |= set(again.trigger.keys)
                deferral, event = again, _first_event(again.trigger)
    assert waits == 1

    assert result["archive_records"] == {f"{seed.topic}[{p}]": lows[p] - 50 for p in (0, 1)}
    assert result["topic_records"] == {f"{seed.topic}[{p}]": 180 - lows[p] for p in (0, 1)}
    assert result["plan"]["partitions"][f"{seed.topic}[0]"]["archive"] == [50, lows[0]]
    assert rec.group_offsets(bootstrap, seed.group, seed.topic, 2) == lows
    _all_back(seed, clickhouse_client)
