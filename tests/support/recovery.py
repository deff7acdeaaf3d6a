"""The zero-loss restore tests' shared steps: a dataset fed by ``dev.ingest.IngestConsumer`` on the
embedded stack, its DAGs run with ``dag.test()``, and what a user checks afterwards (the table, the
groups' offsets, the catch-up task's summary)."""

from __future__ import annotations

import json
import uuid
from typing import Any

KIND = "clickhouse_snapshot"


def dags() -> dict[str, Any]:
    """The ClickHouse snapshot and restore DAGs, each parsed from its file (no import error)."""
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    out = {}
    for name in ("clickhouse_hourly_snapshot", "clickhouse_restore"):
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{name}.py"))
        assert not bag.import_errors, bag.import_errors
        out[name] = bag.dags[name]
    return out


def snapshot_between(bootstrap: str, topic: str, ingest: Any, *, before: int, after: int) -> list[Any]:
    """``before`` events ingested, an hourly snapshot (its run must succeed), then ``after`` more
    events ingested; the events' values, in production order."""
    from datetime import UTC, datetime

    from backup_pipelines.core.runs import hour_floor
    from backup_pipelines.dev.airflow import run_dag_in_process
    from backup_pipelines.dev.ingest import produce_events

    values = produce_events(bootstrap, topic, 0, before, partitions=2)
    assert ingest.drain() == before
    hourly = dags()["clickhouse_hourly_snapshot"]
    ran(run_dag_in_process(hourly, logical_date=hour_floor(datetime.now(UTC))))
    values += produce_events(bootstrap, topic, before, after, partitions=2)
    ingest.drain()
    return values


def config(example_config: dict[str, Any], db: str, topic: str, group: str, **ingest: Any) -> dict[str, Any]:
    """The example config with one dataset ``db`` whose ingestion reads ``topic`` as ``group``
    (``ingest``: more keys of its ingest section, e.g. ``replay="replay_topic"``)."""
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
                    "ingest": {"topics": [topic], "consumer_groups": [group], "tables": ["stream"], **ingest},
                }
            ],
        }
    )
    return cfg


def conf(db: str, **values: Any) -> dict[str, Any]:
    """The ``clickhouse_restore`` form: ``db`` restored over itself, with the replay."""
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


def ran(run: Any) -> dict[str, Any]:
    """Task states of a successful run (asserts the run succeeded)."""
    states = {ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower() for ti in run.get_task_instances()}
    assert str(run.state).endswith("success"), f"run ended {run.state}: {states}"
    return states


def xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value")
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def rows(client: Any, db: str, *, final: bool) -> list[tuple[Any, ...]]:
    """(topic, partition, offset, value, via) of every row, by source position."""
    return client.query(
        f"SELECT topic, partition, offset, value, via FROM {db}.stream {'FINAL' if final else ''} "
        "ORDER BY partition, offset"
    ).result_rows


def twice(client: Any, db: str) -> list[tuple[int, int]]:
    """(partition, offset) of the events stored more than once (before merges)."""
    return [
        (int(p), int(o))
        for p, o, _ in client.query(
            f"SELECT partition, offset, count() c FROM {db}.stream GROUP BY partition, offset HAVING c > 1"
        ).result_rows
    ]


def group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets on ``topic`` (-1001: none)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    answer = admin.list_consumer_group_offsets([request])[group].result(30)
    return {tp.partition: tp.offset for tp in answer.topic_partitions}


def setup(
    client: Any,
    bootstrap: str,
    write_config: Any,
    example_config: dict[str, Any],
    n: str,
    *,
    prefix: str = "zero_loss",
    **ingest: Any,
) -> tuple[str, str, str, Any]:
    """A 2-partition topic, the table, the config and the ingestion of dataset ``<prefix>_<n>``:
    (database, topic, group, ingestion)."""
    from backup_pipelines.dev.ingest import IngestConsumer, create_ingest_table
    from support.kafka import create_topic

    short = "".join(w[0] for w in prefix.split("_"))
    db, topic, group = f"{prefix}_{n}", f"{short}-{n}-{uuid.uuid4().hex[:6]}", f"{short}-{n}-ingest"
    create_topic(bootstrap, topic, 2)
    create_ingest_table(client, db, "stream")
    write_config(config(example_config, db, topic, group, **ingest))
    ingest_consumer = IngestConsumer(client, bootstrap, [topic], group, db, "stream")
    return db, topic, group, ingest_consumer


def sources_in(bootstrap: str, topic: str, *, idle: float = 3.0) -> dict[int, list[tuple[str, int, int]]]:
    """Per partition of ``topic``, the source position (``recovery.feed.SOURCE_HEADER``) of each
    record, in offset order: read by assignment from the start until nothing comes for ``idle``
    seconds (the embedded broker's watermarks are not reliable), nothing committed."""
    from confluent_kafka import Consumer, TopicPartition

    from backup_pipelines.recovery.feed import source_of

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: dict[int, list[tuple[str, int, int]]] = {p: [] for p in partitions}
        while (message := consumer.poll(idle)) is not None:
            assert message.error() is None, f"{topic}: {message.error()}"
            source = source_of(message.headers())
            assert source is not None, f"{topic}[{message.partition()}] {message.offset()}: no source header"
            out[message.partition()].append(source)
        return out
    finally:
        consumer.close()
