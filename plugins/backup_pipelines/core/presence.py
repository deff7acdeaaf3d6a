"""Are a recovery point's objects still in S3 as its manifest records them?

For every object the manifest lists: present, with the recorded size, and with the recorded ETag
(an object replaced by another of the same size has another ETag). A point whose objects live in
a folder of its own (ClickHouse backups, EMR days, export months) is checked with one listing of
that folder; a point whose folder is shared with other points (a Kafka topic's archive) is checked
object by object, so the cost follows the point, never the dataset's history.

Network or permission errors raise: they mean the check could not run, not that data is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
        found: list[MissingObject] = []
        for point in points:
            stored = self._stored(point)
            for entry in point.objects:
                bucket, key = object_key(point, entry)
                problem = _problem(entry, stored.get((bucket, key)))
                if problem:
                    found.append(MissingObject(point.recovery_point_id, f"s3://{bucket}/{key}", problem))
            log.info("presence of %s: %d object(s) checked", point.label, len(point.objects))
        return found

    def _stored(self, point: Manifest) -> dict[tuple[str, str], S3Object]:
        if point.kind not in SHARED_LOCATION_KINDS:
            bucket, prefix = split_s3_url(point.location)
            return {(o.bucket, o.key): o for o in self.s3.iter_objects(bucket, prefix)}
        stored: dict[tuple[str, str], S3Object] = {}
        for entry in point.objects:
            bucket, key = object_key(point, entry)
            for obj in self.s3.iter_objects(bucket, key):  # the key itself (and keys it prefixes)
                if obj.key == key:
                    stored[(bucket, key)] = obj
        return stored


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
