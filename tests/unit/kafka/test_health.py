"""The backlog at risk and the idle topic: which ages count, and from when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backup_pipelines.kafka.health import TopicHealth, backlog_at_risk
from backup_pipelines.kafka.probe import PartitionProbe

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
RETENTION_MS = 3 * 86_400_000  # 3 days; with 1 day of grace, at risk from 2 days old


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at_risk(probes: dict[int, PartitionProbe], written_after: dict[int, datetime | None]) -> list[int]:
    found = backlog_at_risk(
        "events", probes, written_after=written_after, retention_ms=RETENTION_MS, grace=DAY, now=NOW
    )
    return [b.partition for b in found]


def test_the_oldest_record_not_archived_past_retention_minus_grace_is_at_risk() -> None:
    probes = {
        0: PartitionProbe(0, 100, 250, 100, _ms(NOW - 2 * DAY - timedelta(minutes=1))),  # at risk
        1: PartitionProbe(1, 40, 90, 40, _ms(NOW - 2 * DAY + timedelta(minutes=1))),  # not yet
        2: PartitionProbe(2, 70, 70),  # nothing waits: the partition ends where the archive does
    }
    assert _at_risk(probes, {}) == [0]
    (backlog,) = backlog_at_risk(
        "events", probes, written_after={}, retention_ms=RETENTION_MS, grace=DAY, now=NOW
    )
    assert backlog.describe().startswith(
        "events[0]: offsets 100-249 are not archived; the oldest is 2d 1m old"
    )
    assert "retention.ms=259200000 (3d) minus the 1d grace" in backlog.describe()


def test_a_record_stamped_in_the_past_counts_from_when_the_cut_before_it_was_seen() -> None:
    """A producer clock years behind, or no timestamp: the record was written after the previous
    archive's cut was observed, so it is no older than that."""
    cut_seen = NOW - DAY
    far_past = PartitionProbe(0, 10, 20, 10, 1_000)
    no_stamp = PartitionProbe(1, 10, 20, 10, None)
    assert _at_risk({0: far_past, 1: no_stamp}, {0: cut_seen, 1: cut_seen}) == []
    assert _at_risk({0: far_past, 1: no_stamp}, {0: NOW - 3 * DAY, 1: NOW - 3 * DAY}) == [0, 1]
    assert _at_risk({0: far_past, 1: no_stamp}, {}) == [0], "no cut known: the timestamp is all there is"


def test_nothing_is_at_risk_without_time_based_retention() -> None:
    probes = {0: PartitionProbe(0, 0, 5, 0, 1_000)}
    assert backlog_at_risk("events", probes, written_after={}, retention_ms=None, grace=DAY, now=NOW) == []


def test_an_idle_topic_is_named_with_its_last_record_and_an_active_one_is_not() -> None:
    last = NOW - 9 * DAY
    warning = TopicHealth("events", [], last).idle_warning(8 * DAY, NOW)
    assert warning == (
        "topic 'events': no records since 2026-05-23 12:00:00 UTC (longer than its RPO of 8d): is it idle "
        "or abandoned?"
    )
    assert TopicHealth("events", [], NOW - 7 * DAY).idle_warning(8 * DAY, NOW) is None
    assert "no records since its first archive" in (
        TopicHealth("events", [], None).idle_warning(DAY, NOW) or ""
    )
