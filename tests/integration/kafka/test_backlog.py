"""The weekly archive's guard names records not archived yet that Kafka's retention is about to
delete, and emails the on-call; the run still archives them (on the embedded broker)."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

W1 = datetime(2026, 6, 1, 4, tzinfo=UTC)
WEEK = timedelta(days=7)
RETENTION_MS = 2 * 86_400_000  # 2 days; with the 1-day grace, at risk from 1 day old


def test_a_backlog_older_than_retention_minus_grace_is_named_emailed_and_archived(
    embedded_stack: Any, write_config: Any, example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.kafka import create_topic, produce_stamped, run_window, weekly_archive

    from backup_pipelines.core import clock
    from backup_pipelines.kafka.operators import backlog_alert

    bootstrap = embedded_stack.kafka_bootstrap
    topic = f"it-backlog-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, 2, retention_ms=RETENTION_MS)
    in_window = int((W1 - WEEK / 2).timestamp() * 1000)
    produce_stamped(bootstrap, topic, [(0, in_window), (1, in_window)])
    weekly = weekly_archive(write_config, example_config, topic)
    _, (first,) = run_window(weekly, W1 - WEEK, W1)
    end = {o.partition: o.end_offset for o in first.offsets}
    # Written after that archive's cut, stamped by a producer whose clock is a year behind: its age
    # counts from the cut, not from the stamp.
    produce_stamped(bootstrap, topic, [(1, in_window - 365 * 86_400_000)] * 3)

    _, findings = weekly.plan(W1, W1 + WEEK)
    assert findings[0].at_risk == [], "written moments ago: not at risk"

    later = datetime.now(UTC) + timedelta(days=1, hours=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    specs, findings = weekly.plan(W1, W1 + WEEK)
    (line,) = findings[0].at_risk
    assert line.startswith(
        f"{topic}[1]: offsets {end[1]}-{end[1] + 2} are not archived; the oldest is 1d 1h old"
    )
    assert "retention.ms=172800000 (2d) minus the 1d grace" in line

    mails_before = len(embedded_stack.mailbox())
    backlog_alert(weekly.cfg, findings, run_id="scheduled__2026-06-08")
    (mail,) = embedded_stack.mailbox()[mails_before:]
    assert str(mail["Subject"]) == (
        f"[backup-pipelines] RPO BREACH: Kafka backlog at risk of deletion before archiving ({topic})"
    )
    assert line in html.unescape(mail.get_body(("html", "plain")).get_content())

    results = [weekly.archive(spec) for spec in specs]
    assert {r.partition: (r.start_offset, r.end_offset) for r in results} == {
        0: (end[0], end[0]),
        1: (end[1], end[1] + 3),
    }, "the run archives the backlog it warned about"
