"""Kafka topics in the RPO monitor, beyond the age of their newest archive.

- **Backlog at risk** (a breach): records no archive holds yet whose oldest is older than the
  topic's ``retention.ms`` minus ``kafka_archive.retention_grace``: Kafka may delete them before
  the next archive run. The breach names topic, partitions and offsets, and clears (a recovery
  email) once an archive holds them.
- **Idle topic** (a warning): a topic that received nothing for longer than its RPO. Its
  archives stay fresh (empty and verified); the warning makes an abandoned or misrouted topic
  visible.

- **Missing topic** (a warning): a configured topic the cluster does not have (misspelt, or
  deleted since its last archive), named with the closest existing topics. The archive run fails
  on it (nothing is archived, no empty point is written), so its age grows to a breach; the
  warning says why from the first monitor pass on.

When Kafka cannot be reached, each Kafka dataset gets a warning saying so; the catalog ages still
count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.kafka.client import KafkaClient, missing_topic_message
from backup_pipelines.kafka.health import TopicHealth, topic_health
from backup_pipelines.monitor.rpo import Age

log = logging.getLogger(__name__)

# Kafka answers within seconds or not at all: the monitor runs every 15 minutes and must not hang.
TIMEOUT_SECONDS = 10.0


def breach_text(health: TopicHealth) -> str | None:
    """The breach of a topic whose backlog is at risk (None when nothing is)."""
    if not health.at_risk:
        return None
    partitions = ", ".join(str(b.partition) for b in health.at_risk)
    details = "; ".join(b.describe() for b in health.at_risk)
    return f"Kafka records not archived are at risk of deletion (partitions {partitions}): {details}"


def with_kafka_health(
    cfg: BackupConfig,
    catalog: Catalog,
    ages: Sequence[Age],
    *,
    now: datetime,
    kafka: KafkaClient | None = None,
) -> list[Age]:
    """``ages`` with each Kafka topic's backlog breach, idle warning and missing-topic warning added."""
    topics = [a.target.dataset for a in ages if a.target.kind == DatasetKind.KAFKA_ARCHIVE]
    if not topics:
        return list(ages)
    kafka = kafka or KafkaClient.from_config(cfg, group_id=f"{cfg.kafka_archive.consumer_group_id}-monitor")
    try:
        existing = kafka.topics(timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # Kafka down: say so, keep the catalog's verdict
        log.warning("RPO: Kafka not reachable, backlog and idle checks skipped: %s", exc)
        note = f"Kafka not reachable, backlog at risk and idle topic not checked: {exc}"
        return [_with(a, warning=note) if a.target.dataset in topics else a for a in ages]
    checked = []
    for age in ages:
        name = age.target.dataset
        if age.target.kind != DatasetKind.KAFKA_ARCHIVE:
            checked.append(age)
            continue
        if name not in existing:
            checked.append(_with(age, warning=missing_topic_message(name, existing)))
            continue
        try:
            health = topic_health(
                kafka,
                catalog,
                name,
                existing[name],
                grace=cfg.kafka_archive.retention_grace,
                now=now,
                timeout=TIMEOUT_SECONDS,
            )
        except Exception as exc:  # one topic's trouble must not hide the others
            log.warning("RPO: %s: Kafka checks failed: %s", age.target.key, exc)
            checked.append(_with(age, warning=f"Kafka checks failed: {exc}"))
            continue
        idle = health.idle_warning(timedelta(seconds=age.target.rpo_seconds), now)
        checked.append(_with(age, warning=idle, breach=breach_text(health)))
    return checked


def _with(age: Age, *, warning: str | None = None, breach: str | None = None) -> Age:
    warnings = "; ".join(w for w in (age.warning, warning) if w) or None
    return replace(age, warning=warnings, breach=breach or age.breach)
