"""Fakes and factories for Kafka tests without a broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError

from backup_pipelines.kafka.parquet import Record


class FakeMessage:
    def __init__(self, offset: int, ts: int | None = None, error: KafkaError | None = None) -> None:
        self._offset, self._ts, self._error = offset, ts, error

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._ts is None else (1, self._ts)

    def error(self) -> KafkaError | None:
        return self._error


def archive_manifest(**fields: Any) -> Any:
    """A kafka_archive manifest of topic ``events`` for the window ending 2026-11-16 04:00."""
    from backup_pipelines.core.manifest import Manifest

    return Manifest(
        kind="kafka_archive",
        dataset="events",
        recovery_point_id="20261116T040000Z",
        captured_at=datetime(2026, 11, 16, 4, tzinfo=UTC),
        location="s3://analytics-archive/kafka/events/",
        storage_class="GLACIER",
        **fields,
    )


def record(offset: int, *, ts: int | None = 1_000, value: bytes = b"v") -> Record:
    return Record("events", 0, offset, 0 if ts is None else 1, ts, b"k", value, [("h", b"1")])


def produce_stamped(bootstrap: str, topic: str, rows: list[tuple[int, int]], *, value: bytes = b"v") -> None:
    """Produce one record per ``(partition, timestamp ms)`` in order (-1: Kafka's "no timestamp"),
    its value ``<value>-<partition>-<n>`` so each can be told apart."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "allow.auto.create.topics": False})
    for n, (partition, ts) in enumerate(rows):
        payload = b"%s-%d-%d" % (value, partition, n)
        producer.produce(topic, value=payload, key=b"k%d" % n, partition=partition, timestamp=ts)
    assert producer.flush(30) == 0, f"records to {topic} not delivered"


def create_topic(bootstrap: str, topic: str, partitions: int, *, retention_ms: int = 30 * 86_400_000) -> None:
    from backup_pipelines.dev.sample_data import create_topic as create

    create(bootstrap, topic, partitions=partitions, retention_ms=retention_ms)


def archived_records(s3: Any, bucket: str, keys: list[str], folder: Any) -> list[Record]:
    """The records of archive files in S3 (GLACIER: restored first, as a user would), in key order."""
    import uuid

    from backup_pipelines.kafka.parquet import read_records

    records: list[Record] = []
    for key in keys:
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
        local = folder / f"{uuid.uuid4().hex}.parquet"
        local.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        records += read_records(local)
        local.unlink()
    return records


def topic_names(bootstrap: str) -> set[str]:
    """The cluster's topics, asked without creating any."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    return set(admin.list_topics(timeout=30).topics)


def weekly_archive(write_config: Any, example_config: dict[str, Any], *topics: str, **section: Any) -> Any:
    """A ``WeeklyArchive`` of ``topics`` on the embedded stack (small files: they split)."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.kafka.client import KafkaClient
    from backup_pipelines.kafka.weekly import WeeklyArchive

    example_config["kafka_archive"] = {
        **example_config["kafka_archive"],
        "file_max_bytes": 4096,
        "row_group_rows": 100,
        "topics": [{"name": topic} for topic in topics],
        **section,
    }
    write_config(example_config)
    cfg = load_config()
    kafka = KafkaClient(kafka_conn_id=cfg.connections.kafka, group_id="it-archiver", stall_timeout=60)
    return WeeklyArchive(kafka, BackupS3Hook(aws_conn_id=cfg.connections.aws), Catalog.from_config(cfg), cfg)


def run_window(weekly: Any, start: datetime, end: datetime) -> tuple[list[Any], list[Any]]:
    """One weekly run as the DAG makes it: plan, archive each partition, check, manifests.
    Returns the partition results and the manifests written."""
    specs, findings = weekly.plan(start, end)
    assert not any(f.lost for f in findings), findings
    results = [weekly.archive(spec) for spec in specs]
    assert weekly.check(results) == []
    return results, weekly.write_manifests(results, producer={"dag_id": "test"})
