"""Effective state: a point is usable only when it and every member of its chain are verified."""

from __future__ import annotations

import pytest
from support.catalog import manifest, moto_catalog

from backup_pipelines.core.chains import dependents, resolve
from backup_pipelines.core.manifest import Listing


def _chain(*states: str) -> list:
    """F, I1, I2, ... each on the previous, with the given own states."""
    points = []
    for n, state in enumerate(states):
        rp = "F" if n == 0 else f"I{n}"
        points.append(
            manifest(
                rp,
                hours_ago=20 - n,
                base=points[-1].recovery_point_id if points else None,
                state=state,
            )
        )
    return points


def test_a_chain_of_verified_points_is_verified_with_its_root_and_depth() -> None:
    states = resolve(_chain("verified", "verified", "verified"))
    assert [states[p].state for p in ("F", "I1", "I2")] == ["verified"] * 3
    assert states["I2"].root == "F" and states["I2"].depth == 2


def test_a_failed_full_fails_every_point_built_on_it_naming_the_member() -> None:
    points = _chain("verified", "verified", "verified", "verified")
    failed = points[0].model_copy(
        update={
            "verification": points[0].verification.model_copy(
                update={"state": "failed", "detail": "s3://b/x: object is missing"}
            )
        }
    )
    states = resolve([failed, *points[1:]])
    for rp in ("I1", "I2", "I3"):
        assert states[rp].state == "failed"
        assert states[rp].broken_member == "F"
        assert "F" in (states[rp].reason or "") and "s3://b/x: object is missing" in (states[rp].reason or "")
    assert Listing([failed, *points[1:]]).verified() == []
    # The member is named once, however deep the point: no "chain member F failed: " per level.
    assert states["I1"].reason == "base F failed: s3://b/x: object is missing"
    assert states["I3"].reason == "chain member F failed: s3://b/x: object is missing"


def test_unverified_base_makes_dependents_unverified_not_failed() -> None:
    states = resolve(_chain("verified", "unverified", "verified"))
    assert states["I1"].state == "unverified"
    assert states["I2"].state == "unverified" and "I1" in (states["I2"].reason or "")


def test_missing_base_and_loops_are_failed() -> None:
    orphan = manifest("I5", hours_ago=1, base="GONE")
    a = manifest("A", hours_ago=2, base="B")
    b = manifest("B", hours_ago=3, base="A")
    states = resolve([orphan, a, b])
    assert states["I5"].state == "failed" and states["I5"].broken_member == "GONE"
    assert "GONE" in (states["I5"].reason or "") and "missing" in (states["I5"].reason or "")
    assert states["A"].state == "failed" and states["B"].state == "failed"
    assert "loop" in (states["A"].reason or "") + (states["B"].reason or "")


def test_long_chains_resolve_without_recursion() -> None:
    points = _chain(*["verified"] * 5000)
    states = resolve(points)
    assert states[points[-1].recovery_point_id].depth == 4999
    assert states[points[-1].recovery_point_id].usable


def test_dependents_are_every_point_whose_chain_goes_through_the_member() -> None:
    full = manifest("F", hours_ago=9)
    i1 = manifest("I1", hours_ago=8, base="F")
    i2 = manifest("I2", hours_ago=7, base="I1")
    other = manifest("G", hours_ago=6)
    j1 = manifest("J1", hours_ago=5, base="G")
    assert dependents([full, i1, i2, other, j1], "I1") == ["I2"]
    assert dependents([full, i1, i2, other, j1], "F") == ["I1", "I2"]
    assert dependents([full, i1, i2, other, j1], "J1") == []


@pytest.mark.parametrize("member", ["F", "I1"])
def test_marking_a_member_failed_fails_its_dependents_in_the_catalog(member: str) -> None:
    with moto_catalog() as catalog:
        for point in _chain("verified", "verified", "verified"):
            catalog.write(point)
        listing = catalog.list_points("clickhouse_snapshot", "analytics")
        broken = listing.by_id()[member]
        catalog.mark_verification(
            broken, state="failed", checks=["objects_present"], detail="s3://b/k: object is missing"
        )
        after = catalog.list_points("clickhouse_snapshot", "analytics").by_id()
        assert after[member].verification.state == "failed"
        later = ["I1", "I2"] if member == "F" else ["I2"]
        for rp in later:
            assert after[rp].verification.state == "failed"
            assert (
                after[rp].verification.detail == f"chain member {member} failed: s3://b/k: object is missing"
            )
        assert catalog.latest_verified("clickhouse_snapshot", "analytics") == (
            None if member == "F" else after["F"]
        )
