"""What a day's archive run has to do, decided from two listings and the previous manifest.

The source prefix and the archive prefix are listed once each (``ListObjectsV2``, 1,000 keys a
request) and walked together by relative key: S3 lists keys in UTF-8 byte order, which is Python's
code-point order, and removing a common prefix keeps that order. So the walk holds one object of
each listing at a time; only the previous manifest (by relative key) is held whole.

For each relative key (``decide``):

- ``keep``: the previous manifest is verified, lists the key from the same source version (ETag and
  size) and the archive still holds exactly the recorded copy (ETag and size): no request;
- ``copy``: anything else with a source (new, changed, or its archived copy changed or missing);
- ``carry``: the source is gone (deleted after the archive, or by anyone) but the archive still
  holds the recorded copy: it stays in the point (a re-run never drops an archived object);
- ``lost``: the source is gone and the recorded copy changed or is missing: the point can no longer
  be restored in full, and the run says so;
- ``ignore``: an archive object no manifest lists (a copy of a failed run): not the point's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from backup_pipelines.core.manifest import Manifest, ObjectEntry
from backup_pipelines.core.s3 import S3Object

SOURCE_ETAGS = "source_etags"
Action = Literal["keep", "copy", "carry", "lost", "ignore"]


def bare_etag(etag: str) -> str:
    return etag.strip('"')


@dataclass(frozen=True, slots=True)
class Pair:
    """One relative key: its source object (if listed) and its archive object (if listed)."""

    rel: str
    source: S3Object | None
    archived: S3Object | None


def pair_listings(
    sources: Iterable[S3Object], src_prefix: str, archived: Iterable[S3Object], dest_prefix: str
) -> Iterator[Pair]:
    """Walk both listings together by relative key (a full outer merge join, in key order)."""
    src_iter, dest_iter = iter(sources), iter(archived)
    src, dest = next(src_iter, None), next(dest_iter, None)
    while src is not None or dest is not None:
        src_rel = src.key[len(src_prefix) :] if src is not None else None
        dest_rel = dest.key[len(dest_prefix) :] if dest is not None else None
        if dest_rel is None or (src_rel is not None and src_rel < dest_rel):
            assert src_rel is not None
            yield Pair(src_rel, src, None)
            src = next(src_iter, None)
        elif src_rel is None or dest_rel < src_rel:
            yield Pair(dest_rel, None, dest)
            dest = next(dest_iter, None)
        else:
            yield Pair(src_rel, src, dest)
            src, dest = next(src_iter, None), next(dest_iter, None)


class PreviousArchive:
    """The day's previous manifest by relative key, and which source version each entry came from.

    The manifest's ``etag`` is the archived copy's; the source's is the same unless encryption
    made them differ (SSE-KMS), in which case ``details.source_etags`` records it by relative key.
    """

    def __init__(self, manifest: Manifest | None, dest_prefix: str) -> None:
        self.manifest = manifest
        self.dest_prefix = dest_prefix
        objects = manifest.objects if manifest is not None else []
        self.by_rel: dict[str, ObjectEntry] = {
            o.key[len(dest_prefix) :]: o for o in objects if o.key.startswith(dest_prefix)
        }
        self.source_etags: dict[str, str] = dict(manifest.details.get(SOURCE_ETAGS) or {}) if manifest else {}
        self.unseen = set(self.by_rel)  # entries neither listing has shown yet

    @property
    def verified(self) -> bool:
        return self.manifest is not None and self.manifest.is_verified

    def source_etag(self, rel: str, entry: ObjectEntry) -> str:
        return self.source_etags.get(rel, entry.etag or "")

    def same_source(self, rel: str, source: S3Object) -> bool:
        """The entry of ``rel`` was archived from exactly this source version."""
        entry = self.by_rel.get(rel)
        return (
            entry is not None
            and entry.size == source.size
            and self.source_etag(rel, entry) == bare_etag(source.etag)
        )

    @staticmethod
    def intact(entry: ObjectEntry, archived: S3Object | None) -> bool:
        """The archive still holds the recorded copy (same ETag and size)."""
        return archived is not None and bare_etag(archived.etag) == entry.etag and archived.size == entry.size

    def decide(self, pair: Pair) -> Action:
        entry = self.by_rel.get(pair.rel)
        self.unseen.discard(pair.rel)
        if pair.source is None:
            if entry is None:
                return "ignore"
            return "carry" if self.intact(entry, pair.archived) else "lost"
        checked = entry is not None and (entry.sha256 or entry.checksum)
        if (
            self.verified
            and entry is not None
            and checked
            and self.same_source(pair.rel, pair.source)
            and self.intact(entry, pair.archived)
        ):
            return "keep"
        return "copy"

    def missing(self) -> list[Pair]:
        """Entries that neither listing holds (after the walk): gone from the source and the archive."""
        return [Pair(rel, None, None) for rel in sorted(self.unseen)]
