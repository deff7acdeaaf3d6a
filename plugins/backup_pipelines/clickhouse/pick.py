"""Which recovery point a restore uses, and where it may write (pure decisions, unit-tested).

**The point.** By id (``recovery_point_id``, the slot id shown in the catalog and in every plan),
by time (``target_time``: the newest verified point *captured* at or before it), or the latest
verified point. The choice comes with its reason in words, the dataset's verified points newest
first (what a person picks an id from), and a note when the time given lies inside the slot of a
later point: typing ``12:00Z`` for the point ``…T1200Z`` (captured at 12:03) restores the 11:00
point, and the note says so before anything is restored.

**The target.** A restore writes only into a database that no configured dataset uses as its live
database and that is empty or absent, unless ``confirm_overwrite`` names that very database: then
the chain is restored into a staging database and the tables are swapped in, the replaced ones
kept in staging. System databases are never a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backup_pipelines.clickhouse.params import check_database_name
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    ParamError,
    RecoveryPointNotFoundError,
    SourceNotFoundError,
    UnsafeOperationError,
)
from backup_pipelines.core.manifest import Listing, Manifest

CANDIDATES_SHOWN = 12


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PointChoice:
    point: Manifest
    reason: str
    note: str | None
    candidates: list[str]


def candidates(verified: Sequence[Manifest]) -> list[str]:
    """The verified points a person can pick by id, newest first, with their capture times."""
    newest_first = sorted(verified, key=lambda p: p.captured_at, reverse=True)
    return [
        f"{p.recovery_point_id} (captured {stamp(p.captured_at)})" for p in newest_first[:CANDIDATES_SHOWN]
    ]


def choose_point(listing: Listing, dataset: str, *, point_id: str | None, at: datetime | None) -> PointChoice:
    """The point a restore uses and why (see the module's doc)."""
    verified = sorted(listing.verified(), key=lambda p: p.captured_at)
    shown = candidates(verified)
    listed = "; verified points, newest first: " + (", ".join(shown) or "none")
    if point_id:
        point = next((p for p in verified if p.recovery_point_id == point_id), None)
        if point is None:
            known = listing.by_id().get(point_id)
            state = (
                f"is {known.verification.state}"
                + (f" ({known.verification.detail})" if known.verification.detail else "")
                + " or its chain is broken"
                if known
                else "does not exist"
            )
            raise RecoveryPointNotFoundError(f"recovery point {point_id} of {dataset!r} {state}{listed}")
        reason = f"recovery point asked by id: {point_id}, captured {stamp(point.captured_at)}"
        return PointChoice(point, reason, None, shown)
    eligible = [p for p in verified if at is None or p.captured_at <= at]
    if not eligible:
        raise RecoveryPointNotFoundError(
            f"no verified recovery point of {dataset!r}"
            + (f" captured at or before {stamp(at)}" if at else "")
            + listed
        )
    point = eligible[-1]
    if at is None:
        reason = f"latest verified point: {point.recovery_point_id}, captured {stamp(point.captured_at)}"
        return PointChoice(point, reason, None, shown)
    reason = (
        f"newest verified point captured at or before {stamp(at)}: {point.recovery_point_id}, "
        f"captured {stamp(point.captured_at)}"
    )
    return PointChoice(point, reason, slot_note(listing.points, point, at), shown)


def slot_note(points: Sequence[Manifest], chosen: Manifest, at: datetime) -> str | None:
    """A point captured after ``at`` whose slot holds ``at`` (the user typed its slot time), named."""
    for later in sorted(points, key=lambda p: p.captured_at):
        if later.captured_at <= at or later.recovery_point_id == chosen.recovery_point_id:
            continue
        start = later.interval_start or later.interval_end
        if start is None or not start <= at:
            continue
        state = "" if later.is_verified else f" (it is {later.verification.state})"
        return (
            f"target_time {stamp(at)} lies in the slot of recovery point {later.recovery_point_id} "
            f"(slot {stamp(start)} to {stamp(later.interval_end or start)}, captured "
            f"{stamp(later.captured_at)}, after the time given){state}: that point is NOT restored, "
            f"{chosen.recovery_point_id} is; to restore it, give recovery_point_id "
            f"{later.recovery_point_id}"
        )
    return None


def tables_of(point: Manifest, asked: Sequence[str] | None) -> list[str]:
    """The tables a restore of ``point`` takes: all it holds, or those asked (each one it holds)."""
    available = list(point.details.get("tables") or point.row_counts)
    unknown = sorted(set(asked or ()) - set(available))
    if unknown:
        raise SourceNotFoundError(
            f"recovery point {point.recovery_point_id} of {point.dataset!r} holds no table "
            f"{', '.join(unknown)} (it holds {', '.join(available)})"
        )
    return list(asked) if asked else available


def live_owners(cfg: BackupConfig) -> dict[str, list[str]]:
    """Live database -> the configured datasets that back it up."""
    owners: dict[str, list[str]] = {}
    for dataset in cfg.clickhouse_snapshots.datasets:
        owners.setdefault(dataset.database, []).append(dataset.name)
    return owners


def check_target(
    cfg: BackupConfig,
    *,
    dataset: str,
    target: str,
    existing_tables: Sequence[str],
    confirm: str | None,
) -> bool:
    """True when the restore overwrites (staging, then swap); raises when ``target`` is not allowed.

    ``existing_tables``: the tables ``target`` holds now (empty when it is absent)."""
    try:
        check_database_name(target)
    except ValueError as exc:
        raise ParamError(f"param target_database: {exc}") from None
    if confirm is not None and confirm != target:
        raise UnsafeOperationError(
            f"confirm_overwrite names {confirm!r} but the target database is {target!r}: "
            "confirm the overwrite of the target itself, by its name"
        )
    owners = live_owners(cfg).get(target, [])
    if owners and confirm != target:
        whose = ", ".join(repr(o) for o in owners)
        own = " (the dataset being restored)" if dataset in owners else ""
        raise UnsafeOperationError(
            f"target_database {target!r} is the live database of dataset {whose}{own}; a restore "
            "writes only into a database no configured dataset uses, empty or absent, unless "
            f"confirm_overwrite is {target!r} (the tables are then swapped in, the replaced ones "
            "kept in a staging database)"
        )
    if existing_tables and confirm != target:
        shown = ", ".join(sorted(existing_tables)[:10]) + (" ..." if len(existing_tables) > 10 else "")
        raise UnsafeOperationError(
            f"target_database {target!r} is not empty (it holds {shown}); restore into an empty or "
            f"new database, or set confirm_overwrite to {target!r} to swap the restored tables in"
        )
    return bool(owners or existing_tables)
