"""Are a recovery point's objects still in S3 as its manifest records them?

For every object the manifest lists: present, with the recorded size, and with the recorded ETag
(an object replaced by another of the same size has another ETag). Points whose objects live in
folders of their own (ClickHouse backups, EMR days, export months) are checked with listings of
those folders: the folders of a chain, side by side under their dataset's folder, with one listing
from the first to the last (pages of 1,000 keys, so a chain of small increments costs about what
its full costs, not a listing per member). A point whose folder is shared with other points (a
Kafka topic's archive) is checked object by object, so the cost follows the point, never the
dataset's history.

Network or permission errors raise: they mean the check could not run, not that data is missing.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.s3 import split_s3_url

if TYPE_CHECKING:
    from backup_pipelines.core.manifest import Manifest, ObjectEntry
    from backup_pipelines.core.s3 import BackupS3Hook, S3Object

log = logging.getLogger(__name__)

#: The check name recorded on a point failed because an object is missing, resized or replaced.
CHECK_PRESENCE = "objects_present"

#: Kinds whose points share their location folder with other points of the dataset.
SHARED_LOCATION_KINDS = frozenset({DatasetKind.KAFKA_ARCHIVE})


@dataclass(frozen=True)
class MissingObject:
    """An object a manifest records that is not in S3 as recorded (gone, resized or replaced)."""

    recovery_point_id: str
    url: str
    problem: str

    def describe(self) -> str:
        return f"{self.url}: {self.problem} (recovery point {self.recovery_point_id})"


def object_key(manifest: Manifest, entry: ObjectEntry) -> tuple[str, str]:
    """(bucket, key) of a manifest object; keys are full keys, ``s3://`` URLs or relative to the location."""
    bucket, prefix = split_s3_url(manifest.location)
    if entry.key.startswith("s3://"):
        return split_s3_url(entry.key)
    if not prefix or entry.key.startswith(prefix):
        return bucket, entry.key
    return bucket, prefix.rstrip("/") + "/" + entry.key


class Presence:
    """Checks points' objects against S3 through the gateway."""

    def __init__(self, s3: BackupS3Hook) -> None:
        self.s3 = s3

    def missing(self, points: Iterable[Manifest]) -> list[MissingObject]:
        """Every object of ``points`` that S3 no longer holds as recorded, in the points' order."""
        points = list(points)
        in_folders = self._stored_folders([p for p in points if p.kind not in SHARED_LOCATION_KINDS])
        found: list[MissingObject] = []
        for point in points:
            stored = in_folders if point.kind not in SHARED_LOCATION_KINDS else self._stored_shared(point)
            for entry in point.objects:
                bucket, key = object_key(point, entry)
                problem = _problem(entry, stored.get((bucket, key)))
                if problem:
                    found.append(MissingObject(point.recovery_point_id, f"s3://{bucket}/{key}", problem))
            log.info("presence of %s: %d object(s) checked", point.label, len(point.objects))
        return found

    def _stored_folders(self, points: list[Manifest]) -> dict[tuple[str, str], S3Object]:
        """What S3 holds in the points' own folders: one listing per parent folder, from the first
        point's folder to the last (keys of other folders in between are skipped)."""
        groups: dict[tuple[str, str], set[str]] = {}
        for point in points:
            bucket, prefix = split_s3_url(point.location)
            folder = prefix.rstrip("/") + "/" if prefix else ""
            parent = folder.rstrip("/").rpartition("/")[0]
            groups.setdefault((bucket, parent + "/" if parent else ""), set()).add(folder)
        stored: dict[tuple[str, str], S3Object] = {}
        for (bucket, parent), folders in groups.items():
            ordered = sorted(folders)
            if len(ordered) == 1 or "" in folders:
                listings = [self.s3.iter_objects(bucket, folder) for folder in ordered]
            else:  # "<folder>" sorts before every "<folder>/..." key
                listings = [self.s3.iter_objects(bucket, parent, start_after=ordered[0].rstrip("/"))]
            for listing in listings:
                stored.update(_in_folders(listing, ordered))
        return stored

    def _stored_shared(self, point: Manifest) -> dict[tuple[str, str], S3Object]:
        stored: dict[tuple[str, str], S3Object] = {}
        for entry in point.objects:
            bucket, key = object_key(point, entry)
            for obj in self.s3.iter_objects(bucket, key):  # the key itself (and keys it prefixes)
                if obj.key == key:
                    stored[(bucket, key)] = obj
        return stored


def _in_folders(
    listing: Iterable[S3Object], folders: list[str]
) -> Iterator[tuple[tuple[str, str], S3Object]]:
    """The listed objects inside one of ``folders`` (sorted); stops after the last folder."""
    last = folders[-1]
    for obj in listing:
        if obj.key > last and not obj.key.startswith(last):
            return
        at = bisect_right(folders, obj.key) - 1
        if at >= 0 and obj.key.startswith(folders[at]):
            yield (obj.bucket, obj.key), obj


def _problem(entry: ObjectEntry, obj: S3Object | None) -> str | None:
    if obj is None:
        return "object is missing"
    if obj.size != entry.size:
        return f"object is {obj.size} bytes, the manifest records {entry.size}"
    etag = obj.etag.strip('"')
    if entry.etag and etag != entry.etag.strip('"'):
        return f"object was replaced: its ETag is {etag}, the manifest records {entry.etag.strip(chr(34))}"
    return None


def describe_missing(missing: list[MissingObject], *, limit: int = 5) -> str:
    """One line naming the first objects not in S3 as recorded (and how many more)."""
    shown = "; ".join(f"{m.url}: {m.problem}" for m in missing[:limit])
    more = f" (and {len(missing) - limit} more)" if len(missing) > limit else ""
    return f"{len(missing)} object(s) not in S3 as recorded: {shown}{more}"
