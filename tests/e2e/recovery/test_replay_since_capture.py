"""Zero data loss end to end (dag.test()): a snapshot, more events, the table dropped, then
``clickhouse_restore`` with ``replay_since_capture`` gives back every event, also when Kafka's
retention deleted the oldest events since the snapshot (replayed from the weekly archive).

The ingestion is ``dev.ingest.IngestConsumer`` (commits after inserting), run in this process on
the session's chDB; each test has its own database, topic and group.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import recovery as rec

from backup_pipelines.core.runs import hour_floor
from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

W1 = datetime(2026, 6, 1, 4, tzinfo=UTC)


def test_restore_with_replay_gives_back_every_event_and_dry_run_changes_nothing(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.ingest import produce_events

    bootstrap = embedded_stack.kafka_bootstrap
    db, topic, group, ingest = rec.setup(clickhouse_client, bootstrap, write_config, example_config, "a")
    values = produce_events(bootstrap, topic, 0, 300, partitions=2)
    assert ingest.drain() == 300
    # The duplicate window: 50 events inserted, the commit not done yet when the BACKUP starts.
    values += produce_events(bootstrap, topic, 300, 50, partitions=2)
    assert ingest.drain(commit=False) == 50
    dags = rec.dags()
    slot = hour_floor(datetime.now(UTC))
    rec.ran(run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=slot))
    point = Catalog.from_config(load_config()).list_points(rec.KIND, db).points[-1]
    assert point.details["ingest_offsets"] == {group: {topic: {"0": 150, "1": 150}}}
    assert point.row_counts["stream"] == 350

    values += produce_events(bootstrap, topic, 350, 200, partitions=2)
    ingest.drain()
    clickhouse_client.command(f"DROP TABLE {db}.stream SYNC")

    # Dry run: the plan, and nothing changed (group offsets, no replay topic).
    before = rec.group_offsets(bootstrap, group, topic, 2)
    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db, dry_run=True))
    assert rec.ran(run)["replay_since_capture"] == "success"
    plan = rec.xcom(run, "replay_since_capture")
    assert plan["dry_run"] is True and plan["holes"] == []
    assert plan["partitions"][f"{topic}[0]"]["topic"] == [150, 275]
    assert rec.group_offsets(bootstrap, group, topic, 2) == before

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db))
    states = rec.ran(run)
    assert states == {"restore": "success", "replay_since_capture": "success"}
    result = rec.xcom(run, "replay_since_capture")
    assert result["topic_records"] == {f"{topic}[0]": 125, f"{topic}[1]": 125}
    assert result["archive_records"] == {}
    assert result["lag"][group][f"{topic}[0]"] == 125
    assert result["plan"]["window"]["from"] == point.details["ingest_read_at"]
    assert rec.group_offsets(bootstrap, group, topic, 2) == {0: 150, 1: 150}
    assert clickhouse_client.query(f"SELECT count() FROM {db}.stream").result_rows[0][0] == 350

    ingest.drain()  # the ingestion, started again, consumes from the reset offsets
    rows = rec.rows(clickhouse_client, db, final=True)
    assert len(rows) == 550
    assert sorted(r[3] for r in rows) == sorted(values)
    # Only events of the stated window (inserted before the BACKUP, committed after) came twice.
    window = {(p, o) for p in (0, 1) for o in range(150, 175)}
    assert set(rec.twice(clickhouse_client, db)) <= window


def test_replay_reads_the_archive_for_what_retention_deleted_then_the_topic(
    faulty_kafka: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.kafka import run_window, weekly_archive

    from backup_pipelines.dev.ingest import produce_events

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    bootstrap = faulty_kafka.bootstrap
    db, topic, group, ingest = rec.setup(clickhouse_client, bootstrap, write_config, example_config, "b")
    values = rec.snapshot_between(bootstrap, topic, ingest, before=100, after=200)
    dags = rec.dags()
    config = rec.config(example_config, db, topic, group)
    weekly = weekly_archive(write_config, config, topic)  # the same config, with the topic archived
    _, (archive,) = run_window(weekly, W1 - timedelta(days=7), W1)
    assert {o.partition: (o.start_offset, o.end_offset) for o in archive.offsets} == {
        0: (0, 150),
        1: (0, 150),
    }
    values += produce_events(bootstrap, topic, 300, 60, partitions=2)
    ingest.drain()
    # Retention deletes the oldest events since the snapshot (offsets 50.. of each partition).
    lows = {p: faulty_kafka.drop_batches_through(topic, p, 74) for p in (0, 1)}
    assert all(50 < low <= 150 for low in lows.values()), lows
    clickhouse_client.command(f"DROP TABLE {db}.stream SYNC")

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db))
    rec.ran(run)
    result = rec.xcom(run, "replay_since_capture")
    assert result["archive_records"] == {f"{topic}[{p}]": lows[p] - 50 for p in (0, 1)}
    assert result["topic_records"] == {f"{topic}[{p}]": 180 - lows[p] for p in (0, 1)}
    assert result["plan"]["partitions"][f"{topic}[0]"]["archive"] == [50, lows[0]]
    assert rec.group_offsets(bootstrap, group, topic, 2) == lows

    ingest.drain()
    rows = rec.rows(clickhouse_client, db, final=True)
    assert len(rows) == 360
    assert sorted(r[3] for r in rows) == sorted(values)
    assert {r[0] for r in rows} == {topic}  # archived events keep their source position
    assert rec.twice(clickhouse_client, db) == []  # committed before the BACKUP: no duplicate window
