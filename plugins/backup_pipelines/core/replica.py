"""The DR region as the pipelines see it: which buckets, which connection, which catalog.

``storage.replica`` names the DR region's buckets and AWS connection. Every recovery point copied
there keeps its key; only the bucket changes (``replica_location``). The DR region has its own
catalog at the same prefix in its backup bucket: one manifest per replicated point, pointing at
the replica's objects, written only after every object was checked in the replica (so a manifest
there means "present and checked"). Restores, replays and drills read it with
``region_catalog(cfg, "dr")``; the monitor measures the DR-region RPO from it.

A ClickHouse increment names its base by URL inside its ``.backup`` file, and ``RESTORE`` follows
that URL down the whole chain (its ``base_backup`` setting overrides only the first level), so the
replica's ``.backup`` names the replica's base (``rewrite_base_url``): a chain restores from the DR
region alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from backup_pipelines.core.errors import ConfigError

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.config.common import ReplicaStorage
    from backup_pipelines.core.manifest import Listing

_BASE_RE = re.compile(rb"<base_backup>(.*?)</base_backup>", re.DOTALL)


class ReplicaRecord(BaseModel):
    """Where a point's replica is and how it was checked (the DR manifest's ``details["replica"]``)."""

    model_config = ConfigDict(extra="forbid")

    region: str
    location: str
    primary_location: str
    mode: Literal["copy", "s3_replication"]
    verified_at: datetime
    checks: list[str]
    objects: int
    bytes: int
    rewritten: list[str] = []


def replica_section(cfg: BackupConfig) -> ReplicaStorage:
    if cfg.storage.replica is None:
        raise ConfigError("storage.replica is not configured: there is no DR region to use")
    return cfg.storage.replica


def bucket_map(cfg: BackupConfig) -> dict[str, str]:
    """Primary bucket -> its DR-region counterpart."""
    replica = replica_section(cfg)
    return {
        cfg.storage.backup_bucket: replica.backup_bucket,
        cfg.storage.archive_bucket: replica.archive_bucket,
    }


def replica_location(cfg: BackupConfig, location: str) -> str:
    """``s3://<primary bucket>/<key>`` -> ``s3://<DR bucket>/<key>`` (the key never changes)."""
    if not location.startswith("s3://"):
        raise ConfigError(f"{location!r} is not an s3:// location")
    bucket, _, key = location[5:].partition("/")
    mapped = bucket_map(cfg).get(bucket)
    if mapped is None:
        raise ConfigError(f"{location} is in no configured primary bucket; it has no DR counterpart")
    return f"s3://{mapped}/{key}"


def base_url_of(backup_file: bytes) -> str | None:
    """The base backup a ClickHouse ``.backup`` file names (``S3('<url>'...)``), or None."""
    match = _BASE_RE.search(backup_file)
    return match.group(1).decode() if match else None


def rewrite_base_url(backup_file: bytes, old_url: str, new_url: str) -> bytes:
    """The ``.backup`` file with its base URL ``old_url`` replaced by ``new_url``.

    Refuses (``ConfigError``) a file naming another base: a replica must never point at a base
    nobody checked."""
    named = base_url_of(backup_file)
    if named is None:
        return backup_file
    if old_url not in named:
        raise ConfigError(f"the .backup file names base {named!r}, not the expected {old_url!r}")
    match = _BASE_RE.search(backup_file)
    assert match is not None
    element = b"<base_backup>" + named.replace(old_url, new_url).encode() + b"</base_backup>"
    return backup_file[: match.start()] + element + backup_file[match.end() :]


def chain_ids(point: Any, by_id: Mapping[str, Any]) -> list[str]:
    """``point`` and every base it needs that ``by_id`` holds (stops at a missing base); points are
    manifests or catalog index entries (``recovery_point_id`` and ``base``)."""
    ids, current = [], point
    while True:
        ids.append(current.recovery_point_id)
        if not current.base or current.base in ids or current.base not in by_id:
            return ids
        current = by_id[current.base]


def held_for_replica(primary: Listing, replica: Listing | None) -> set[str]:
    """Primary points retention must keep because the DR region has not received them, with every
    base they need (all verified points when the DR catalog could not be read: ``replica=None``).
    Works on the catalog index's entries when the listing has them (no manifest is read)."""
    points = getattr(primary, "entries", None) or primary.points
    by_id = {p.recovery_point_id: p for p in points}
    states = primary.states()
    held = (
        {p.recovery_point_id for p in (getattr(replica, "entries", None) or replica.points)}
        if replica
        else set()
    )
    keep: set[str] = set()
    for point in points:
        if states[point.recovery_point_id].usable and point.recovery_point_id not in held:
            keep.update(chain_ids(point, by_id))
    return keep
