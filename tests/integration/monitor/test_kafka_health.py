"""The RPO monitor against the embedded broker: records no archive holds yet, close to the topic's
retention, are a breach (one email naming topic, partition and offsets, one recovery email once an
archive holds them); a topic that received nothing for longer than its RPO is a warning."""

from __future__ import annotations

import html
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WEEK = timedelta(days=7)


@pytest.fixture
def monitored(example_config: dict[str, Any]) -> dict[str, Any]:
    """The example config with a catalog, a status key and recipients of this test's own."""
    tag = secrets.token_hex(3)
    raw = example_config
    raw["storage"] = {**raw["storage"], "replica": None, "catalog_prefix": f"catalog-kh-{tag}/"}
    raw["alerts"] = {"recipients": ["oncall-kafka@example.com"], "from_email": "bp@example.com"}
    raw["clickhouse_snapshots"] = {**raw["clickhouse_snapshots"], "datasets": []}
    raw["emr_archive"] = {**raw["emr_archive"], "jobs": []}
    raw["deep_archive_exports"] = {**raw["deep_archive_exports"], "exports": []}
    raw["rpo_monitor"] = {"schedule": "*/15 * * * *", "status_key": f"status/rpo-kh-{tag}.json"}
    return raw


def _monitor(now: datetime) -> dict[str, Any]:
    from backup_pipelines.core.config import load_config
    from backup_pipelines.monitor.service import run_monitor

    return run_monitor(load_config(), run_id="rpo-kafka-health", now=now, gauge=lambda *a: None).summary()


def test_a_backlog_at_risk_breaches_until_an_archive_holds_it(
    embedded_stack: Any,
    s3: Any,
    write_config: Any,
    monitored: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.kafka import create_topic, produce_stamped, run_window, weekly_archive

    from backup_pipelines.core import clock

    bootstrap = embedded_stack.kafka_bootstrap
    topic = f"it-risk-{secrets.token_hex(3)}"
    create_topic(bootstrap, topic, 2, retention_ms=2 * 86_400_000)  # at risk from 1 day old
    window_end = datetime(2026, 6, 8, 4, tzinfo=UTC)
    stamp = int((window_end - WEEK / 2).timestamp() * 1000)
    produce_stamped(bootstrap, topic, [(0, stamp), (1, stamp)])
    weekly = weekly_archive(write_config, monitored, topic)
    _, (first,) = run_window(weekly, window_end - WEEK, window_end)
    end0 = next(o.end_offset for o in first.offsets if o.partition == 0)
    produce_stamped(bootstrap, topic, [(0, int(datetime.now(UTC).timestamp() * 1000))] * 4)
    key = f"kafka_archive/{topic}"
    mails_before = len(embedded_stack.mailbox())

    later = datetime.now(UTC) + timedelta(days=2)
    summary = _monitor(later)
    assert summary["breached"] == [key], "the archive is 2 days old (RPO 8 days), but its backlog is at risk"
    status = json.loads(
        s3.get_object(Bucket=weekly.cfg.storage.backup_bucket, Key=monitored["rpo_monitor"]["status_key"])[
            "Body"
        ].read()
    )
    (row,) = status["datasets"]
    assert f"{topic}[0]: offsets {end0}-{end0 + 3} are not archived" in row["breach"]
    (breach,) = embedded_stack.mailbox()[mails_before:]
    assert str(breach["Subject"]) == (
        f"[RPO BREACH] {key}: Kafka records not archived are at risk of deletion (partitions 0)"
    )
    assert f"{topic}[0]: offsets {end0}-{end0 + 3}" in html.unescape(breach.get_body(("html",)).get_content())
    assert _monitor(later)["breached"] == [key] and len(embedded_stack.mailbox()) == mails_before + 1

    monkeypatch.setattr(clock, "utcnow", lambda: later)
    run_window(weekly, window_end, window_end + WEEK)  # the next archive holds them
    assert _monitor(later)["breached"] == []
    recovered = embedded_stack.mailbox()[mails_before + 1 :]
    assert [str(m["Subject"]).split(":")[0] for m in recovered] == [f"[RPO RECOVERED] {key}"]


def test_a_topic_without_records_for_longer_than_its_rpo_is_a_warning_not_a_breach(
    embedded_stack: Any, write_config: Any, monitored: dict[str, Any]
) -> None:
    from support.kafka import create_topic, produce_stamped, run_window, weekly_archive

    bootstrap = embedded_stack.kafka_bootstrap
    idle, busy = f"it-idle-{secrets.token_hex(3)}", f"it-busy-{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    last = now - timedelta(days=10)
    for topic, stamp in ((idle, last), (busy, now - timedelta(hours=1))):
        create_topic(bootstrap, topic, 2)
        produce_stamped(
            bootstrap, topic, [(0, int(stamp.timestamp() * 1000)), (1, int(stamp.timestamp() * 1000))]
        )
    weekly = weekly_archive(write_config, monitored, idle, busy)
    run_window(weekly, now - timedelta(days=11), now - timedelta(days=4))
    summary = _monitor(datetime.now(UTC))  # after the archive: the monitor counts points captured by then
    assert summary["breached"] == [], "both archives are fresh"
    assert summary["warnings"] == {
        f"kafka_archive/{idle}": (
            f"topic {idle!r}: no records since {last:%Y-%m-%d %H:%M:%S} UTC (longer than its RPO of 8d): "
            "is it idle or abandoned?"
        )
    }


def test_a_topic_deleted_since_its_archive_is_a_warning_naming_it_and_is_not_re_created(
    embedded_stack: Any, write_config: Any, monitored: dict[str, Any]
) -> None:
    """Its archive is still fresh (the catalog's verdict stands until the RPO runs out, as the
    archive run now fails on it), but every monitor pass says the topic is gone, on a broker that
    creates topics on a metadata request."""
    from confluent_kafka.admin import AdminClient
    from support.kafka import create_topic, produce_stamped, run_window, topic_names, weekly_archive

    bootstrap = embedded_stack.kafka_bootstrap
    topic = f"it-ledger-{secrets.token_hex(3)}"
    sibling = f"{topic}-v2"
    now = datetime.now(UTC)
    for name in (topic, sibling):
        create_topic(bootstrap, name, 1)
        produce_stamped(bootstrap, name, [(0, int((now - timedelta(hours=2)).timestamp() * 1000))])
    weekly = weekly_archive(write_config, monitored, topic)
    run_window(weekly, now - WEEK, now - timedelta(hours=1))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)

    summary = _monitor(datetime.now(UTC))
    assert summary["breached"] == []
    warning = summary["warnings"][f"kafka_archive/{topic}"]
    assert warning.startswith(f"Kafka topic {topic!r} does not exist on the cluster (closest existing: ")
    assert sibling in warning
    assert topic not in topic_names(bootstrap), "the monitor re-created the deleted topic"
