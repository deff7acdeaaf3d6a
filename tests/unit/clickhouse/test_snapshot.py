"""Base choice: only a point whose whole chain is verified is a base; a full when the chain is old."""

from __future__ import annotations

from datetime import timedelta

from support.catalog import T0, manifest

from backup_pipelines.clickhouse.snapshot import choose_base
from backup_pipelines.core.manifest import Listing


def _manifest(rp: str, hours_ago: float, base: str | None, state: str = "verified"):
    return manifest(rp, dataset="ds", hours_ago=hours_ago, base=base, state=state)


def test_base_choice_skips_failed_and_unverified_and_takes_a_full_when_due() -> None:
    full = _manifest("F", 5, None)
    inc = _manifest("I1", 4, "F")
    bad = _manifest("I2", 3, "I1", state="failed")
    pending = _manifest("I3", 2, "I1", state="unverified")
    listing = Listing([full, inc, bad, pending])
    assert choose_base(listing, now=T0, full_every=timedelta(hours=24)) is inc
    assert choose_base(listing, now=T0, full_every=timedelta(hours=5)) is None
    assert choose_base(Listing([bad, pending]), now=T0, full_every=timedelta(hours=24)) is None


def test_a_verified_point_on_a_failed_member_is_never_a_base() -> None:
    """The newest point says verified, but its full failed: the chain cannot be restored."""
    full = _manifest("F", 5, None, state="failed")
    inc = _manifest("I1", 4, "F")
    inc2 = _manifest("I2", 3, "I1")
    assert choose_base(Listing([full, inc, inc2]), now=T0, full_every=timedelta(hours=24)) is None
    older_full = _manifest("F0", 9, None)
    older_inc = _manifest("J1", 8, "F0")
    listing = Listing([older_full, older_inc, full, inc, inc2])
    assert choose_base(listing, now=T0, full_every=timedelta(hours=24)) is older_inc


def test_the_slot_being_retaken_and_future_points_are_not_bases() -> None:
    full = _manifest("F", 5, None)
    future = _manifest("I9", -1, "F")
    listing = Listing([full, future])
    assert choose_base(listing, now=T0, full_every=timedelta(hours=24)) is full
    assert choose_base(listing, exclude="F", now=T0, full_every=timedelta(hours=24)) is None
