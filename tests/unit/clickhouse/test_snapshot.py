"""Base choice: only a verified point of an intact chain is a base; a full when the chain is old."""

from __future__ import annotations

from datetime import timedelta

from support.catalog import T0, manifest

from backup_pipelines.clickhouse.snapshot import choose_base


def _manifest(rp: str, hours_ago: float, base: str | None, state: str = "verified"):
    return manifest(rp, dataset="ds", hours_ago=hours_ago, base=base, state=state)


def test_base_choice_skips_failed_and_unverified_and_takes_a_full_when_due() -> None:
    now = T0
    full = _manifest("F", 5, None)
    inc = _manifest("I1", 4, "F")
    bad = _manifest("I2", 3, "I1", state="failed")
    pending = _manifest("I3", 2, "I1", state="unverified")
    chains = {"F": [full], "I1": [full, inc]}
    points = [full, inc, bad, pending]
    assert choose_base(points, chains, now=now, full_every=timedelta(hours=24)) is inc
    assert choose_base(points, chains, now=now, full_every=timedelta(hours=5)) is None
    assert choose_base([bad, pending], {}, now=now, full_every=timedelta(hours=24)) is None
