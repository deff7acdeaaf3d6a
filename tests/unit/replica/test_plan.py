"""What the DR region still needs, what it may drop, and what the primary must keep for it."""

from __future__ import annotations

from support.catalog import manifest

from backup_pipelines.core.manifest import Listing
from backup_pipelines.core.replica import held_for_replica
from backup_pipelines.replica.plan import plan_dataset, to_copy, to_drop


def _listing(*points: object) -> Listing:
    return Listing(points=list(points))  # type: ignore[arg-type]


def test_copies_verified_points_the_replica_lacks_oldest_first_and_an_increment_waits_for_its_base() -> None:
    full = manifest("f1", hours_ago=5)
    inc = manifest("i1", hours_ago=4, base="f1")
    failed = manifest("x", hours_ago=3, state="failed")
    orphan = manifest("i9", hours_ago=2, base="f0")  # its base is missing: not verified, not copied
    primary = _listing(full, inc, failed, orphan)
    copy, waiting = to_copy(primary, _listing())
    assert [p.recovery_point_id for p in copy] == ["f1", "i1"]
    assert waiting == {}
    copy, _ = to_copy(primary, _listing(manifest("f1", hours_ago=5)))
    assert [p.recovery_point_id for p in copy] == ["i1"]


def test_an_increment_whose_base_is_not_verified_waits_and_is_not_copied() -> None:
    full = manifest("f1", hours_ago=5, state="unverified")
    inc = manifest("i1", hours_ago=4, base="f1")
    copy, waiting = to_copy(_listing(full, inc), _listing())
    assert copy == [] and waiting == {}  # neither counts: the increment's chain is not verified


def test_the_replica_drops_what_primary_retention_removed_but_never_its_newest_verified_point() -> None:
    old = manifest("a", hours_ago=30)
    mid = manifest("b", hours_ago=20)
    new = manifest("c", hours_ago=10)
    replica = _listing(old, mid, new)
    assert [p.recovery_point_id for p in to_drop(_listing(manifest("c", hours_ago=10)), replica)] == [
        "a",
        "b",
    ]
    # the primary lost everything newer: the replica's newest verified point stays
    assert [p.recovery_point_id for p in to_drop(_listing(manifest("z", hours_ago=1)), replica)] == ["a", "b"]
    assert to_drop(_listing(), replica) == [], "an empty primary is a lost primary, not retention"


def test_the_replica_keeps_the_bases_of_what_it_keeps() -> None:
    full = manifest("f", hours_ago=30)
    inc = manifest("i", hours_ago=20, base="f")
    replica = _listing(full, inc)
    assert to_drop(_listing(manifest("i", hours_ago=20, base="f")), replica) == []
    plan = plan_dataset(_listing(manifest("i", hours_ago=20, base="f")), replica)
    assert plan.drop == [] and plan.copy == []


def test_the_primary_keeps_every_point_the_replica_lacks_with_its_chain() -> None:
    full = manifest("f", hours_ago=30)
    inc = manifest("i", hours_ago=20, base="f")
    other = manifest("g", hours_ago=10)
    primary = _listing(full, inc, other)
    assert held_for_replica(primary, _listing(manifest("f", hours_ago=30), manifest("g", hours_ago=10))) == {
        "i",
        "f",
    }
    assert held_for_replica(primary, _listing(full, inc, other)) == set()
    assert held_for_replica(primary, None) == {"f", "i", "g"}, "an unreadable DR catalog keeps everything"
