"""Chains and effective state: a recovery point is usable only when it and every point of its chain
are verified.

``resolve`` walks a dataset's points once (memoised, so linear in their number) and gives each its
effective state: ``failed`` when it or any point of its chain failed or is missing (the reason
names the broken member), ``unverified`` when it or a base is not verified yet, else ``verified``.
RPO, base choice, retention, restore and the drill all read effective states. It works on anything
shaped like a point: a ``Manifest`` or a catalog index entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from backup_pipelines.core.errors import BrokenChainError

if TYPE_CHECKING:
    from backup_pipelines.core.manifest import Listing, Manifest

EffectiveState = Literal["verified", "unverified", "failed"]


class PointLike(Protocol):
    @property
    def recovery_point_id(self) -> str: ...

    @property
    def base(self) -> str | None: ...

    @property
    def own_state(self) -> str: ...

    @property
    def own_detail(self) -> str | None: ...


@dataclass(frozen=True)
class ChainState:
    """A point's place in its chain: its full backup, its depth, and its effective state."""

    recovery_point_id: str
    root: str | None  # the full backup the chain starts at; None when the chain is broken
    depth: int  # 0 for a full backup
    state: EffectiveState
    reason: str | None = None  # why it is not verified (names the broken member)
    broken_member: str | None = None  # the point of the chain that failed or is missing

    @property
    def usable(self) -> bool:
        return self.state == "verified"


def resolve(points: Iterable[PointLike]) -> dict[str, ChainState]:
    """The chain state of every point, in one pass over them (no recursion: chains may be long)."""
    by_id: dict[str, PointLike] = {p.recovery_point_id: p for p in points}
    states: dict[str, ChainState] = {}
    for point_id in by_id:
        path: list[str] = []  # points whose state waits on their base, nearest last
        on_path: set[str] = set()
        current: str | None = point_id
        while current is not None and current not in states:
            point = by_id[current]
            if current in on_path:
                states[current] = ChainState(current, None, 0, "failed", f"base loop at {current}", current)
                break
            terminal = _terminal(point, by_id)
            if terminal is not None:
                states[current] = terminal
                break
            path.append(current)
            on_path.add(current)
            current = point.base
        for waiting in reversed(path):
            if waiting not in states:
                point = by_id[waiting]
                assert point.base is not None
                states[waiting] = _after_base(waiting, point.own_state, states[point.base])
    return states


def _terminal(point: PointLike, by_id: Mapping[str, PointLike]) -> ChainState | None:
    """The state of a point that does not depend on its base's state (a full, a failure), or None."""
    point_id, own = point.recovery_point_id, point.own_state
    if own == "failed":
        return ChainState(point_id, None, 0, "failed", point.own_detail or "failed verification", point_id)
    if point.base is None:
        if own == "verified":
            return ChainState(point_id, point_id, 0, "verified")
        return ChainState(point_id, point_id, 0, "unverified", "not verified yet")
    if point.base not in by_id:
        reason = f"depends on base {point.base}, whose manifest is missing or unusable"
        return ChainState(point_id, None, 0, "failed", reason, point.base)
    return None


def _root_cause(member: str, reason: str | None) -> str | None:
    """``reason`` without the "chain member X failed: " / "base X failed: " it may already carry,
    so a reason names the broken member once, however deep the point is."""
    for prefix in (f"chain member {member} failed: ", f"base {member} failed: "):
        while reason and reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return reason


def _after_base(point_id: str, own: str, base: ChainState) -> ChainState:
    if base.state == "failed":
        member = base.broken_member or base.recovery_point_id
        cause = _root_cause(member, base.reason)
        if member != base.recovery_point_id:
            reason = f"chain member {member} failed: {cause}"
        else:
            reason = f"base {member} failed: {cause}"
        return ChainState(point_id, None, base.depth + 1, "failed", reason, member)
    if own != "verified":
        return ChainState(point_id, base.root, base.depth + 1, "unverified", "not verified yet")
    if base.state != "verified":
        return ChainState(
            point_id,
            base.root,
            base.depth + 1,
            "unverified",
            f"base {base.recovery_point_id} is not verified yet",
        )
    return ChainState(point_id, base.root, base.depth + 1, "verified")


def dependents(points: Iterable[PointLike], point_id: str) -> list[str]:
    """Every point whose chain goes through ``point_id`` (not itself), nearest first."""
    children: dict[str, list[str]] = {}
    for p in points:
        if p.base is not None:
            children.setdefault(p.base, []).append(p.recovery_point_id)
    found: list[str] = []
    queue = sorted(children.get(point_id, []))
    while queue:
        current = queue.pop(0)
        if current in found or current == point_id:
            continue
        found.append(current)
        queue += sorted(children.get(current, []))
    return found


def chain_of(manifest: Manifest, listing: Listing, *, cached: list[Manifest] | None) -> list[Manifest]:
    """The points a restore of ``manifest`` reads: its full base first, itself last. ``cached``: its
    bases as the base's chain file holds them (checked here too); None reads the bases' manifests
    (one parallel read). ``BrokenChainError`` names a missing or failed base, or a loop."""
    if cached is not None:
        for member, its_base in zip([*cached[1:], manifest], cached, strict=True):
            _check_base(member, its_base)
        return [*cached, manifest]
    listing.preload(_bases_in_index(manifest, listing))
    chain = [manifest]
    seen = {manifest.recovery_point_id}
    while chain[0].base:
        base_id = chain[0].base
        if base_id in seen:
            raise BrokenChainError(f"recovery point {manifest.recovery_point_id}: base loop at {base_id}")
        base = None
        if listing.entry(base_id) is not None:
            try:
                base = listing.manifest(base_id)
            except KeyError:
                base = None
        if base is None:
            raise BrokenChainError(
                f"recovery point {chain[0].recovery_point_id} of {manifest.kind} dataset "
                f"{manifest.dataset!r} depends on base {base_id}, whose manifest is missing or unusable"
            )
        _check_base(chain[0], base)
        seen.add(base_id)
        chain.insert(0, base)
    return chain


def _check_base(point: Manifest, base: Manifest) -> None:
    """A base that failed verification breaks every point built on it."""
    if base.verification.state == "failed":
        raise BrokenChainError(
            f"recovery point {point.recovery_point_id} depends on base {base.recovery_point_id}, "
            f"which failed verification: {base.verification.detail}"
        )


def _bases_in_index(manifest: Manifest, listing: Listing) -> list[str]:
    """The ids of ``manifest``'s bases as the index entries link them (``chain_of`` checks each)."""
    ids: list[str] = []
    base = manifest.base
    while base and base not in ids and base != manifest.recovery_point_id:
        ids.append(base)
        entry = listing.entry(base)
        base = entry.base if entry is not None else None
    return ids
