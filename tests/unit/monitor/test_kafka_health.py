"""Kafka topics in the monitor pass: a backlog at risk breaches, an idle or missing topic warns,
Kafka trouble is said and never hides the catalog's verdict. (Against a real broker:
tests/integration/monitor/test_kafka_health.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.kafka.health import Backlog, TopicHealth
from backup_pipelines.monitor import kafka_health
from backup_pipelines.monitor.rpo import Age, Target
from backup_pipelines.monitor.service import transition_email
from backup_pipelines.monitor.status import Transition

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def _ages() -> list[Age]:
    fresh = {"newest_id": "20260531T040000Z", "captured_at": NOW - DAY}
    return [
        Age(Target("kafka_archive", "orders", 8 * 86_400), NOW, **fresh),
        Age(Target("kafka_archive", "typo", 8 * 86_400), NOW, **fresh),
        Age(Target("clickhouse_snapshot", "analytics", 2 * 86_400), NOW, **fresh),
    ]


class _Kafka:
    def __init__(self, topics: dict[str, list[int]] | Exception) -> None:
        self._topics = topics

    def topics(self, *, timeout: float) -> dict[str, list[int]]:
        if isinstance(self._topics, Exception):
            raise self._topics
        return self._topics


def _health(example_config: dict[str, Any], kafka: _Kafka, ages: list[Age] | None = None) -> list[Age]:
    from backup_pipelines.core.config import BackupConfig

    cfg = BackupConfig.model_validate(example_config)
    return kafka_health.with_kafka_health(cfg, None, ages or _ages(), now=NOW, kafka=kafka)  # type: ignore[arg-type]


def test_a_backlog_at_risk_is_a_breach_naming_partitions_and_offsets(
    example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    backlog = Backlog("orders", 3, 1_200, 1_450, NOW - 3 * DAY, 3 * DAY, 4 * 86_400_000, DAY)
    monkeypatch.setattr(kafka_health, "topic_health", lambda *a, **k: TopicHealth("orders", [backlog], NOW))
    orders, typo, analytics = _health(example_config, _Kafka({"orders": [0, 3]}))
    assert not orders.fresh and orders.breach is not None
    assert orders.breach.startswith("Kafka records not archived are at risk of deletion (partitions 3): ")
    assert "orders[3]: offsets 1200-1449 are not archived" in orders.breach
    assert orders.as_status()["breach"] == orders.breach and orders.as_status()["fresh"] is False
    assert typo.fresh and typo.breach is None, "the catalog's verdict stands: the archive run fails on it"
    assert typo.warning == "Kafka topic 'typo' does not exist on the cluster (1 topic(s) exist, none close)"
    assert analytics.fresh
    email = transition_email(Transition("breach", orders, NOW))
    assert email.subject == (
        "[RPO BREACH] kafka_archive/orders: Kafka records not archived are at risk of deletion (partitions 3)"
    )


def test_an_idle_topic_is_a_warning_not_a_breach(
    example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        kafka_health, "topic_health", lambda *a, **k: TopicHealth("orders", [], NOW - 9 * DAY)
    )
    orders = _health(example_config, _Kafka({"orders": [0]}))[0]
    assert orders.fresh and orders.breach is None
    assert orders.warning is not None and "no records since 2026-05-23 12:00:00 UTC" in orders.warning


def test_kafka_out_of_reach_is_said_on_every_kafka_dataset_and_changes_no_verdict(
    example_config: dict[str, Any],
) -> None:
    ages = _health(example_config, _Kafka(ConnectionError("broker down")))
    assert [a.warning for a in ages] == [
        "Kafka not reachable, backlog at risk and idle topic not checked: broker down",
        "Kafka not reachable, backlog at risk and idle topic not checked: broker down",
        None,
    ]
    assert all(a.fresh for a in ages)


def test_one_topics_failure_keeps_its_earlier_warning_and_spares_the_others(
    example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def health(kafka: Any, catalog: Any, topic: str, *args: Any, **kwargs: Any) -> TopicHealth:
        if topic == "orders":
            raise TimeoutError("no answer from partition 2")
        return TopicHealth(topic, [], NOW)

    monkeypatch.setattr(kafka_health, "topic_health", health)
    ages = _ages()
    ages[0] = Age(ages[0].target, NOW, newest_id="x", captured_at=NOW, warning="retention.ms too short")
    orders, typo, _ = _health(example_config, _Kafka({"orders": [0], "typo": [0]}), ages)
    assert orders.warning == "retention.ms too short; Kafka checks failed: no answer from partition 2"
    assert typo.warning is None


def test_without_kafka_datasets_kafka_is_not_asked(example_config: dict[str, Any]) -> None:
    ages = [_ages()[2]]
    assert _health(example_config, _Kafka(AssertionError("asked")), ages) == ages
