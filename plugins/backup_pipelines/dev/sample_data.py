"""Deterministic sample data for the demo and the tests: ClickHouse events, Kafka events, EMR outputs.

Deterministic (seeded) so a test can compute what a restore or an export must return.
"""

from __future__ import annotations

import io
import logging
import random
from datetime import date, datetime, timedelta
from typing import Any

from backup_pipelines.core.config import SQL_ROOT

log = logging.getLogger(__name__)

EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "search")
COUNTRIES = ("DE", "US", "FR", "BR", "IN", "JP")


def sample_events(start: datetime, end: datetime, count: int, seed: int) -> list[tuple[Any, ...]]:
    """``count`` events spread over [start, end): (event_time, user_id, session_id, type, page, revenue)."""
    rng = random.Random(seed)
    span_ms = int((end - start).total_seconds() * 1000)
    rows = []
    for i in range(count):
        event_type = EVENT_TYPES[rng.randrange(len(EVENT_TYPES))]
        user_id = rng.randrange(1, 500)
        rows.append(
            (
                start + timedelta(milliseconds=(span_ms * i) // max(count, 1)),
                user_id,
                f"s-{user_id}-{rng.randrange(20)}",
                event_type,
                f"/p/{rng.randrange(50)}",
                round(rng.uniform(1, 200), 2) if event_type == "purchase" else 0.0,
            )
        )
    return rows


def seed_clickhouse(client: Any, *, start: datetime, end: datetime, rows: int = 10_000, seed: int = 7) -> int:
    """Create ``analytics.events`` and ``analytics.users`` and insert events spread over [start, end)."""
    client.command("CREATE DATABASE IF NOT EXISTS analytics")
    for name in ("events.sql", "users.sql"):
        client.command((SQL_ROOT / "seed" / name).read_text())
    data = sample_events(start, end, rows, seed)
    client.insert(
        "analytics.events",
        data,
        column_names=["event_time", "user_id", "session_id", "event_type", "page", "revenue"],
    )
    rng = random.Random(seed)
    users = [
        (uid, COUNTRIES[rng.randrange(len(COUNTRIES))], start - timedelta(days=rng.randrange(1, 400)))
        for uid in range(1, 500)
    ]
    client.insert("analytics.users", users, column_names=["user_id", "country", "signed_up_at"])
    log.info("seeded %d events between %s and %s into analytics.events", rows, start, end)
    return rows


def create_topic(bootstrap: str, topic: str, *, partitions: int, retention_ms: int) -> None:
    """Create a topic (with ``retention.ms``) unless it exists."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(
        topic, num_partitions=partitions, replication_factor=1, config={"retention.ms": str(retention_ms)}
    )
    for future in admin.create_topics([new]).values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def seed_kafka(
    bootstrap: str,
    topic: str,
    *,
    start: datetime,
    end: datetime,
    messages: int = 3_000,
    partitions: int = 3,
    retention_ms: int = 14 * 24 * 3600 * 1000,
    seed: int = 11,
    producer_config: dict[str, Any] | None = None,
) -> int:
    """Create ``topic`` and produce messages with keys, headers and timestamps spread over [start, end).

    ``producer_config`` is layered over the defaults (e.g. a small ``batch.num.messages``).
    """
    from confluent_kafka import Producer

    create_topic(bootstrap, topic, partitions=partitions, retention_ms=retention_ms)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": False,
            **(producer_config or {}),
        }
    )
    rng = random.Random(seed)
    span_ms = int((end - start).total_seconds() * 1000)
    start_ms = int(start.timestamp() * 1000)
    for i in range(messages):
        user_id = rng.randrange(1, 500)
        producer.produce(
            topic,
            key=f"user-{user_id}".encode(),
            value=(
                f'{{"seq":{i},"user_id":{user_id},"event_type":"{EVENT_TYPES[i % len(EVENT_TYPES)]}"}}'
            ).encode(),
            headers=[("source", b"sample"), ("seq", str(i).encode())],
            timestamp=start_ms + (span_ms * i) // max(messages, 1),
            partition=i % partitions,
        )
        if i % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} sample messages to {topic} were not delivered")
    log.info("produced %d messages to %s between %s and %s", messages, topic, start, end)
    return messages


def seed_emr_outputs(
    s3_client: Any,
    *,
    bucket: str,
    job: str,
    day: date,
    files: int = 3,
    rows_per_file: int = 200,
    success_marker: str | None = "_SUCCESS",
) -> list[str]:
    """Write a day's EMR-style Parquet outputs (``<job>/dt=<day>/part-*.parquet``) and the marker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    prefix = f"{job}/dt={day.isoformat()}/"
    keys = []
    for n in range(files):
        table = pa.table(
            {
                "user_id": list(range(n * rows_per_file, (n + 1) * rows_per_file)),
                "day": [day.isoformat()] * rows_per_file,
                "score": [float(i % 17) for i in range(rows_per_file)],
            }
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        key = f"{prefix}part-{n:05d}.parquet"
        s3_client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        keys.append(key)
    if success_marker:
        s3_client.put_object(Bucket=bucket, Key=prefix + success_marker, Body=b"")
    return keys
