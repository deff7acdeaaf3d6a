"""The demo data, seeded for the intervals the scheduled DAGs run next: ``make demo`` and ``make airflow``.

ClickHouse rows over 40 days (up to 3 hours ago), a week and a day of Kafka events on the configured
topics, a day of EMR outputs per configured job (the day of the last daily interval). ``make airflow``
seeds from a subprocess (``python -m backup_pipelines.dev.embedded seed``) so the launcher itself never
opens the chDB directory its task processes use.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from backup_pipelines.dev.stack import EmbeddedStack


def last_hours(now: datetime, hours: int = 3) -> list[datetime]:
    """Ends of the last ``hours`` completed hours, oldest first."""
    end = now.replace(minute=0, second=0, microsecond=0)
    return [end - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def last_daily_tick(now: datetime, hour: int = 3) -> datetime:
    """The last ``hour``:00 tick at or before now: its interval is the day the EMR outputs are for."""
    tick = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return tick if tick <= now else tick - timedelta(days=1)


def last_weekly_tick(now: datetime) -> datetime:
    monday = (now - timedelta(days=now.weekday())).replace(hour=4, minute=0, second=0, microsecond=0)
    return monday if monday <= now else monday - timedelta(days=7)


def last_monthly_tick(now: datetime) -> datetime:
    tick = now.replace(day=1, hour=5, minute=0, second=0, microsecond=0)
    return tick if tick <= now else (tick - timedelta(days=1)).replace(day=1)


def seed_emr_days(stack: EmbeddedStack, days: list[date]) -> int:
    """A day of outputs per configured EMR job for each of ``days``; returns the files written."""
    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.sample_data import seed_emr_outputs

    cfg = load_config()
    stack.create_buckets(*sorted({job.source[5:].split("/", 1)[0] for job in cfg.emr_archive.jobs}))
    s3 = stack.s3_client()
    files = 0
    for job in cfg.emr_archive.jobs:
        bucket, _, prefix = job.source[5:].partition("/")
        for day in days:
            files += len(seed_emr_outputs(s3, bucket=bucket, job=prefix.split("/", 1)[0], day=day))
    return files


def seed_demo_data(stack: EmbeddedStack, now: datetime) -> dict[str, Any]:
    """Buckets, ClickHouse rows, Kafka events and EMR outputs; returns what was seeded."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.sample_data import seed_clickhouse, seed_kafka

    cfg = load_config()
    stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
    if (dr := cfg.storage.replica) is not None:  # the DR region: the stack's second moto server
        stack.create_buckets(dr.backup_bucket, dr.archive_bucket, region="dr")
    client = ClickHouseHook(clickhouse_conn_id=cfg.connections.clickhouse).get_client()
    rows = seed_clickhouse(client, start=now - timedelta(days=40), end=now - timedelta(hours=3), rows=50_000)
    week_start = last_weekly_tick(now) - timedelta(days=7)
    messages = 0
    for topic in cfg.kafka_archive.topics:
        messages += seed_kafka(
            stack.kafka_bootstrap, topic.name, start=week_start - timedelta(days=1), end=now, messages=6_000
        )
    day = (last_daily_tick(now) - timedelta(days=1)).date()
    files = seed_emr_days(stack, [day])
    return {"clickhouse rows": rows, "kafka messages": messages, "emr files": files}


def describe(seeded: dict[str, Any]) -> str:
    return ", ".join(f"{value:,} {name}" for name, value in seeded.items())
