"""A small Kafka -> ClickHouse ingestion for the demo and the tests: it commits after inserting.

``IngestConsumer.drain`` assigns every partition of its topics (and of their replay topics, when
they exist) at the group's committed offsets (the low watermark where none), inserts what it
reads into a ``ReplacingMergeTree`` keyed by each event's source position, and commits each
batch's offsets only after its insert. A record re-fed through a replay topic carries its
source position in a header (``recovery.feed.SOURCE_HEADER``), so a duplicate collapses into one
row (``FINAL``, or after merges). No group membership: the reset of a stopped ingestion's
offsets is what ``replay_since_capture`` does, and the next ``drain`` starts from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backup_pipelines.recovery.feed import source_of

log = logging.getLogger(__name__)

# Names are bound as ClickHouse ``Identifier`` query parameters, never pasted into the SQL.
TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS {db:Identifier}.{table:Identifier} "
    "(topic String, partition UInt32, offset UInt64, "
    "ts DateTime64(3, 'UTC'), key String, value String, via String) "
    "ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset)"
)
COLUMNS = ["topic", "partition", "offset", "ts", "key", "value", "via"]


def create_ingest_table(client: Any, database: str, table: str) -> None:
    names = {"db": database, "table": table}
    client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters=names)
    client.command(TABLE_SQL, parameters=names)


@dataclass
class IngestConsumer:
    """Consumes ``topics`` (and ``<topic><replay_suffix>``) into ``database.table`` as ``group``."""

    client: Any
    bootstrap: str
    topics: Sequence[str]
    group: str
    database: str
    table: str
    replay_suffix: str = ".replay"
    batch_size: int = 200

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
            }
        )

    def _assignment(self, consumer: Any) -> list[Any]:
        from confluent_kafka import TopicPartition

        existing = consumer.list_topics(timeout=30).topics
        names = [t for topic in self.topics for t in (topic, f"{topic}{self.replay_suffix}") if t in existing]
        wanted = [TopicPartition(t, p) for t in names for p in sorted(existing[t].partitions)]
        committed = consumer.committed(wanted, timeout=30)
        out = []
        for tp in committed:
            low, _ = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)
            out.append(TopicPartition(tp.topic, tp.partition, max(tp.offset, low) if tp.offset >= 0 else low))
        return out

    def drain(self, *, max_records: int | None = None, commit: bool = True, timeout: float = 60.0) -> int:
        """Ingest until every partition is at its end (or ``max_records``); returns rows inserted.

        ``commit=False`` inserts without committing: a crash between the insert and the commit."""
        consumer = self._consumer()
        inserted = 0
        try:
            assignment = self._assignment(consumer)
            consumer.assign(assignment)
            pending = {(tp.topic, tp.partition) for tp in assignment}
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                limit = (
                    self.batch_size if max_records is None else min(self.batch_size, max_records - inserted)
                )
                if limit <= 0:
                    break
                messages = consumer.consume(limit, timeout=1.0)
                rows, last = [], {}
                for message in messages:
                    if message.error() is not None:
                        pending.discard((message.topic(), message.partition()))
                        continue
                    pending.add((message.topic(), message.partition()))
                    rows.append(_row(message))
                    last[(message.topic(), message.partition())] = message.offset()
                if rows:
                    self.client.insert(self.table, rows, column_names=COLUMNS, database=self.database)
                    inserted += len(rows)
                    if commit:
                        _commit(consumer, last)
        finally:
            consumer.close()
        log.info("ingest %s: %d row(s) into %s.%s", self.group, inserted, self.database, self.table)
        return inserted


def _row(message: Any) -> tuple[Any, ...]:
    from datetime import UTC, datetime

    source = source_of(message.headers())
    topic, partition, offset = source or (message.topic(), message.partition(), message.offset())
    _, ts = message.timestamp()
    return (
        topic,
        partition,
        offset,
        datetime.fromtimestamp(max(ts, 0) / 1000, UTC),
        (message.key() or b"").decode(errors="replace"),
        (message.value() or b"").decode(errors="replace"),
        message.topic(),
    )


def _commit(consumer: Any, last: dict[tuple[str, int], int]) -> None:
    from confluent_kafka import TopicPartition

    consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False)


def produce_events(bootstrap: str, topic: str, first: int, count: int, *, partitions: int) -> list[str]:
    """Produce events ``first .. first+count-1`` round robin over ``partitions``; their values."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 25})
    values = []
    for n in range(first, first + count):
        value = f'{{"event":{n},"payload":"e-{n}"}}'
        producer.produce(topic, key=f"k{n}".encode(), value=value.encode(), partition=n % partitions)
        values.append(value)
    if producer.flush(30):
        raise RuntimeError(f"events to {topic} not delivered")
    return values


def demo_zero_loss(stack: Any, now: Any, workdir: Any) -> str:
    """The demo's zero-loss restore: a dataset fed by this ingestion, a snapshot, more events, the
    table dropped, ``clickhouse_restore`` with ``replay_since_capture``; every event back."""
    import os

    import yaml
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    from backup_pipelines import PROJECT_ROOT
    from backup_pipelines.core.config import config_path, load_config
    from backup_pipelines.dev.airflow import run_dag_in_process
    from backup_pipelines.dev.sample_data import create_topic

    db, topic, group = "zero_loss_demo", "ingest_events", "zero-loss-demo-ingest"
    raw = yaml.safe_load(config_path().read_text())
    raw["clickhouse_snapshots"]["datasets"].append(
        {
            "name": db,
            "database": db,
            "tables": ["stream"],
            "ingest": {"topics": [topic], "consumer_groups": [group]},
        }
    )
    overlay = workdir / "zero-loss.yaml"
    overlay.write_text(yaml.safe_dump(raw))
    saved = os.environ.get("BACKUP_PIPELINES_CONFIG")
    os.environ["BACKUP_PIPELINES_CONFIG"] = str(overlay.resolve())
    try:
        client = ClickHouseHook(clickhouse_conn_id=load_config().connections.clickhouse).get_client()
        create_topic(stack.kafka_bootstrap, topic, partitions=3, retention_ms=7 * 86_400_000)
        create_ingest_table(client, db, "stream")
        ingest = IngestConsumer(client, stack.kafka_bootstrap, [topic], group, db, "stream")
        produce_events(stack.kafka_bootstrap, topic, 0, 600, partitions=3)
        ingest.drain()
        dags = {n: DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{n}.py")).dags[n] for n in _DEMO_DAGS}
        run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=now.replace(minute=0, second=0))
        produce_events(stack.kafka_bootstrap, topic, 600, 300, partitions=3)
        ingest.drain()
        stream = {"db": db}
        client.command("DROP TABLE {db:Identifier}.stream SYNC", parameters=stream)
        conf = {"dataset": db, "target_database": db, "confirm_overwrite": db, "replay_since_capture": True}
        run = run_dag_in_process(dags["clickhouse_restore"], run_conf=conf)
        restored = client.query("SELECT count() FROM {db:Identifier}.stream", parameters=stream).result_rows[
            0
        ][0]
        ingest.drain()
        final = client.query(
            "SELECT count() FROM {db:Identifier}.stream FINAL", parameters=stream
        ).result_rows[0][0]
    finally:
        if saved is None:
            os.environ.pop("BACKUP_PIPELINES_CONFIG", None)
        else:
            os.environ["BACKUP_PIPELINES_CONFIG"] = saved
    if not str(run.state).endswith("success") or final != 900:
        raise RuntimeError(f"zero-loss restore ended {run.state}: {final} of 900 events back")
    return f"snapshot held {restored} of 900 events; with the Kafka replay all {final} are back"


_DEMO_DAGS = ("clickhouse_hourly_snapshot", "clickhouse_restore")
