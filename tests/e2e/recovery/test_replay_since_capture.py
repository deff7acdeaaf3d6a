"""Zero data loss end to end (dag.test()): a snapshot, more events, the table dropped, then
``clickhouse_restore`` with ``replay_since_capture`` gives back every event, also when Kafka's
retention deleted the oldest events since the snapshot (replayed from the weekly archive).

The ingestion is ``dev.ingest.IngestConsumer`` (commits after inserting), run in this process on
the session's chDB; each test has its own database, topic and group.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.runs import hour_floor
from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

KIND = "clickhouse_snapshot"
W1 = datetime(2026, 6, 1, 4, tzinfo=UTC)


def _dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    out = {}
    for name in ("clickhouse_hourly_snapshot", "clickhouse_restore"):
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{name}.py"))
        assert not bag.import_errors, bag.import_errors
        out[name] = bag.dags[name]
    return out


def _config(example_config: dict[str, Any], db: str, topic: str, group: str) -> dict[str, Any]:
    cfg = json.loads(json.dumps(example_config))
    cfg["deadlines"] = {}
    cfg["defaults"]["retry_delay"] = "1s"
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-zero-loss/",
            "s3_credentials": "connection",
            "datasets": [
                {
                    "name": db,
                    "database": db,
                    "tables": ["stream"],
                    "ingest": {"topics": [topic], "consumer_groups": [group], "tables": ["stream"]},
                }
            ],
        }
    )
    return cfg


def _conf(db: str, **values: Any) -> dict[str, Any]:
    return {
        "dataset": db,
        "tables": [],
        "recovery_point_id": None,
        "target_time": "",
        "target_database": db,
        "confirm_overwrite": db,
        "dry_run": False,
        "replay_since_capture": True,
        **values,
    }


def _ran(run: Any) -> dict[str, Any]:
    """Task states and the catch-up task's summary (XCom)."""
    states = {ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower() for ti in run.get_task_instances()}
    assert str(run.state).endswith("success"), f"run ended {run.state}: {states}"
    return states


def _xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value")
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _rows(client: Any, db: str, *, final: bool) -> list[tuple[Any, ...]]:
    return client.query(
        f"SELECT topic, partition, offset, value FROM {db}.stream {'FINAL' if final else ''} "
        "ORDER BY partition, offset"
    ).result_rows


def _twice(client: Any, db: str) -> list[tuple[int, int]]:
    return [
        (int(p), int(o))
        for p, o, _ in client.query(
            f"SELECT partition, offset, count() c FROM {db}.stream GROUP BY partition, offset HAVING c > 1"
        ).result_rows
    ]


def _group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    answer = admin.list_consumer_group_offsets([request])[group].result(30)
    return {tp.partition: tp.offset for tp in answer.topic_partitions}


def _setup(
    client: Any, bootstrap: str, write_config: Any, example_config: dict[str, Any], n: str
) -> tuple[str, str, str, Any]:
    from support.kafka import create_topic

    from backup_pipelines.dev.ingest import IngestConsumer, create_ingest_table

    db, topic, group = f"zero_loss_{n}", f"zl-{n}-{uuid.uuid4().hex[:6]}", f"zl-{n}-ingest"
    create_topic(bootstrap, topic, 2)
    create_ingest_table(client, db, "stream")
    write_config(_config(example_config, db, topic, group))
    ingest = IngestConsumer(client, bootstrap, [topic], group, db, "stream")
    return db, topic, group, ingest


def test_restore_with_replay_gives_back_every_event_and_dry_run_changes_nothing(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.ingest import produce_events

    bootstrap = embedded_stack.kafka_bootstrap
    db, topic, group, ingest = _setup(clickhouse_client, bootstrap, write_config, example_config, "a")
    values = produce_events(bootstrap, topic, 0, 300, partitions=2)
    assert ingest.drain() == 300
    # The duplicate window: 50 events inserted, the commit not done yet when the BACKUP starts.
    values += produce_events(bootstrap, topic, 300, 50, partitions=2)
    assert ingest.drain(commit=False) == 50
    dags = _dags()
    slot = hour_floor(datetime.now(UTC))
    _ran(run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=slot))
    point = Catalog.from_config(load_config()).list_points(KIND, db).points[-1]
    assert point.details["ingest_offsets"] == {group: {topic: {"0": 150, "1": 150}}}
    assert point.row_counts["stream"] == 350

    values += produce_events(bootstrap, topic, 350, 200, partitions=2)
    ingest.drain()
    clickhouse_client.command(f"DROP TABLE {db}.stream SYNC")

    # Dry run: the plan, and nothing changed (group offsets, no replay topic).
    before = _group_offsets(bootstrap, group, topic, 2)
    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=_conf(db, dry_run=True))
    assert _ran(run)["replay_since_capture"] == "success"
    plan = _xcom(run, "replay_since_capture")
    assert plan["dry_run"] is True and plan["holes"] == []
    assert plan["partitions"][f"{topic}[0]"]["topic"] == [150, 275]
    assert _group_offsets(bootstrap, group, topic, 2) == before

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=_conf(db))
    states = _ran(run)
    assert states == {"restore": "success", "replay_since_capture": "success"}
    result = _xcom(run, "replay_since_capture")
    assert result["topic_records"] == {f"{topic}[0]": 125, f"{topic}[1]": 125}
    assert result["archive_records"] == {}
    assert result["lag"][group][f"{topic}[0]"] == 125
    assert result["plan"]["window"]["from"] == point.details["ingest_read_at"]
    assert _group_offsets(bootstrap, group, topic, 2) == {0: 150, 1: 150}
    assert clickhouse_client.query(f"SELECT count() FROM {db}.stream").result_rows[0][0] == 350

    ingest.drain()  # the ingestion, started again, consumes from the reset offsets
    rows = _rows(clickhouse_client, db, final=True)
    assert len(rows) == 550
    assert sorted(r[3] for r in rows) == sorted(values)
    # Only events of the stated window (inserted before the BACKUP, committed after) came twice.
    window = {(p, o) for p in (0, 1) for o in range(150, 175)}
    assert set(_twice(clickhouse_client, db)) <= window


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
    db, topic, group, ingest = _setup(clickhouse_client, bootstrap, write_config, example_config, "b")
    values = produce_events(bootstrap, topic, 0, 100, partitions=2)
    assert ingest.drain() == 100
    dags = _dags()
    _ran(run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=hour_floor(datetime.now(UTC))))

    values += produce_events(bootstrap, topic, 100, 200, partitions=2)
    ingest.drain()
    config = _config(example_config, db, topic, group)
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

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=_conf(db))
    _ran(run)
    result = _xcom(run, "replay_since_capture")
    assert result["archive_records"] == {f"{topic}[{p}]": lows[p] - 50 for p in (0, 1)}
    assert result["topic_records"] == {f"{topic}[{p}]": 180 - lows[p] for p in (0, 1)}
    assert result["plan"]["partitions"][f"{topic}[0]"]["archive"] == [50, lows[0]]
    assert _group_offsets(bootstrap, group, topic, 2) == lows

    ingest.drain()
    rows = _rows(clickhouse_client, db, final=True)
    assert len(rows) == 360
    assert sorted(r[3] for r in rows) == sorted(values)
    assert {r[0] for r in rows} == {topic}  # archived events keep their source position
    assert _twice(clickhouse_client, db) == []  # committed before the BACKUP: no duplicate window
